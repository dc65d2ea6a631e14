using System.Globalization;
using Microsoft.Data.Sqlite;
using Parley.Identity;
using Parley.Identity.Crypto;
using static Parley.Storage.Sqlite.SqlCommands;

namespace Parley.Storage.Sqlite.Identity;

/// <summary>
/// Identities in their own SQLite file (<c>identity.db</c> beside the history), so security writes never
/// wait behind the message writer. One connection, one operation at a time, each on the thread pool
/// (callers may be socket I/O threads) and each in its own transaction; WAL with <c>synchronous=FULL</c>.
/// Secrets are stored only as SHA-256 hashes; signing keys are stored as they are (the file is created
/// mode 0600: see docs/security.md).
/// </summary>
public sealed class SqliteIdentityStore : IIdentityStore
{
    private const int SchemaVersion = 1;

    private const string SchemaSql = """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS users (
            name TEXT PRIMARY KEY, role TEXT NOT NULL, created_at INTEGER NOT NULL, banned_at INTEGER, tokens_valid_after INTEGER);
        CREATE TABLE IF NOT EXISTS device_keys (
            id TEXT PRIMARY KEY, user_name TEXT NOT NULL REFERENCES users(name), public_key BLOB NOT NULL UNIQUE,
            label TEXT, created_at INTEGER NOT NULL, revoked_at INTEGER);
        CREATE INDEX IF NOT EXISTS device_keys_user ON device_keys(user_name);
        CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, user_name TEXT, role TEXT NOT NULL, scope TEXT NOT NULL,
            topics TEXT, hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, expires_at INTEGER,
            revoked_at INTEGER, created_by TEXT);
        CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_name);
        CREATE TABLE IF NOT EXISTS refresh_tokens (
            hash TEXT PRIMARY KEY, family TEXT NOT NULL, user_name TEXT NOT NULL, created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL, used_at INTEGER, revoked_at INTEGER);
        CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens(family);
        CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens(user_name);
        CREATE TABLE IF NOT EXISTS invites (
            code TEXT PRIMARY KEY, role TEXT NOT NULL, max_uses INTEGER NOT NULL, used_count INTEGER NOT NULL DEFAULT 0,
            created_by TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER);
        CREATE TABLE IF NOT EXISTS audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, event TEXT NOT NULL, actor TEXT,
            subject TEXT, address TEXT, detail TEXT);
        CREATE TABLE IF NOT EXISTS channels (
            topic TEXT PRIMARY KEY, private INTEGER NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL, deleted_at INTEGER);
        CREATE TABLE IF NOT EXISTS channel_members (
            topic TEXT NOT NULL REFERENCES channels(topic), user_name TEXT NOT NULL, admin INTEGER NOT NULL, added_at INTEGER NOT NULL,
            PRIMARY KEY (topic, user_name));
        CREATE TABLE IF NOT EXISTS groups (
            name TEXT PRIMARY KEY, parent TEXT REFERENCES groups(name), created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS groups_parent ON groups(parent);
        CREATE TABLE IF NOT EXISTS group_members (
            group_name TEXT NOT NULL REFERENCES groups(name), user_name TEXT NOT NULL REFERENCES users(name), lead INTEGER NOT NULL, added_at INTEGER NOT NULL,
            PRIMARY KEY (group_name, user_name));
        CREATE TABLE IF NOT EXISTS signing_keys (kid TEXT PRIMARY KEY, secret BLOB NOT NULL, created_at INTEGER NOT NULL);
        CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """;

    private readonly SerializedConnection _connection;

    private SqliteIdentityStore(SerializedConnection connection, string hubId)
    {
        _connection = connection;
        HubId = hubId;
    }

    public string HubId { get; }

    /// <summary>Opens (creating if needed) the identity database at <paramref name="path"/>.</summary>
    public static async Task<SqliteIdentityStore> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        var hubId = "";
        var connection = await SerializedConnection.OpenAsync(path, synchronousFull: true, c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            Execute(c, SchemaSql);
            var version = ReadMeta(c, "schema_version");
            if (version is not null && version != SchemaVersion.ToString(CultureInfo.InvariantCulture))
            {
                throw new NotSupportedException($"The identity database has schema version {version}; this build supports version {SchemaVersion}.");
            }
            hubId = ReadMeta(c, "hub_id") ?? "hub_" + Secrets.RandomBase64Url(12);
            WriteMeta(c, "hub_id", hubId);
            WriteMeta(c, "schema_version", SchemaVersion.ToString(CultureInfo.InvariantCulture));
            tx.Commit();
        });
        return new SqliteIdentityStore(connection, hubId);
    }

    // ---- users ----

    public ValueTask<(RegisterOutcome Outcome, HubRole Role)> RegisterAsync(string name, DeviceKeyRecord key, string? inviteCode, RegistrationPolicy policy, long nowMs, CancellationToken cancellationToken = default) =>
        RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            // The policy and the invite are checked before the name, so a refusal never tells an outsider
            // whether a name exists; a consumed invite is rolled back with everything else on a later refusal.
            HubRole role;
            var first = Scalar(c, "SELECT 1 FROM users LIMIT 1") is null;
            if (first)
            {
                role = HubRole.Owner;
            }
            else if (inviteCode is not null)
            {
                // Atomic consume: the WHERE clause is the whole check, so two racing claims of a one-use
                // code cannot both get a row back.
                var granted = Scalar(c, """
                    UPDATE invites SET used_count = used_count + 1
                    WHERE code = $c AND revoked_at IS NULL AND expires_at > $now AND used_count < max_uses
                    RETURNING role
                    """, ("$c", inviteCode), ("$now", nowMs)) as string;
                if (granted is null)
                {
                    return (InviteFailure(c, inviteCode, nowMs), HubRole.Guest);
                }
                role = HubRoles.Parse(granted);
            }
            else if (policy == RegistrationPolicy.Open)
            {
                role = HubRole.Member;
            }
            else
            {
                return (policy == RegistrationPolicy.Closed ? RegisterOutcome.RegistrationClosed : RegisterOutcome.InviteRequired, HubRole.Guest);
            }
            if (Scalar(c, "SELECT 1 FROM users WHERE name = $n", ("$n", name)) is not null)
            {
                return (RegisterOutcome.NameTaken, HubRole.Guest);
            }
            if (Scalar(c, "SELECT 1 FROM device_keys WHERE public_key = $k", ("$k", key.PublicKey)) is not null)
            {
                return (RegisterOutcome.KeyTaken, HubRole.Guest);
            }
            NonQuery(c, "INSERT INTO users (name, role, created_at) VALUES ($n, $r, $t)", ("$n", name), ("$r", HubRoles.Name(role)), ("$t", nowMs));
            NonQuery(c, "INSERT INTO device_keys (id, user_name, public_key, label, created_at) VALUES ($id, $n, $k, $l, $t)",
                ("$id", key.Id), ("$n", name), ("$k", key.PublicKey), ("$l", key.Label), ("$t", key.CreatedAtMs));
            tx.Commit();
            return (RegisterOutcome.Registered, role);
        }, cancellationToken);

    private static RegisterOutcome InviteFailure(SqliteConnection c, string code, long nowMs)
    {
        using var command = Command(c, "SELECT revoked_at, expires_at, used_count, max_uses FROM invites WHERE code = $c", ("$c", code));
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return RegisterOutcome.InviteNotFound;
        }
        if (!reader.IsDBNull(0))
        {
            return RegisterOutcome.InviteRevoked;
        }
        if (reader.GetInt64(1) <= nowMs)
        {
            return RegisterOutcome.InviteExpired;
        }
        return RegisterOutcome.InviteExhausted;
    }

    public ValueTask<UserRecord?> GetUserAsync(string name, CancellationToken cancellationToken = default) =>
        RunAsync(c => Query(c, "SELECT name, role, created_at, banned_at, tokens_valid_after FROM users WHERE name = $n", ReadUser, ("$n", name)).FirstOrDefault(), cancellationToken);

    public ValueTask<IReadOnlyList<UserRecord>> ListUsersAsync(CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<UserRecord>>(c => Query(c, "SELECT name, role, created_at, banned_at, tokens_valid_after FROM users ORDER BY name", ReadUser), cancellationToken);

    public ValueTask<bool> SetRoleAsync(string name, HubRole role, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "UPDATE users SET role = $r WHERE name = $n", ("$r", HubRoles.Name(role)), ("$n", name)) > 0, cancellationToken);

    public ValueTask<bool> SetBannedAsync(string name, long? bannedAtMs, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "UPDATE users SET banned_at = $b WHERE name = $n", ("$b", bannedAtMs), ("$n", name)) > 0, cancellationToken);

    public ValueTask<IReadOnlyList<DeviceKeyRecord>> GetDeviceKeysAsync(string userName, CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<DeviceKeyRecord>>(c => Query(c,
            "SELECT id, user_name, public_key, label, created_at, revoked_at FROM device_keys WHERE user_name = $n AND revoked_at IS NULL ORDER BY created_at",
            static r => new DeviceKeyRecord(r.GetString(0), r.GetString(1), (byte[])r.GetValue(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetInt64(4), r.IsDBNull(5) ? null : r.GetInt64(5)),
            ("$n", userName)), cancellationToken);

    // ---- API keys ----

    private const string ApiKeyColumns = "id, name, user_name, role, scope, topics, hash, created_at, expires_at, revoked_at, created_by";

    public ValueTask CreateApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, $"INSERT INTO api_keys ({ApiKeyColumns}) VALUES ($id, $name, $user, $role, $scope, $topics, $hash, $created, $expires, NULL, $by)",
            ("$id", key.Id), ("$name", key.Name), ("$user", key.UserName), ("$role", HubRoles.Name(key.Role)), ("$scope", ApiKeyScopes.Name(key.Scope)),
            ("$topics", key.TopicPattern), ("$hash", key.Hash), ("$created", key.CreatedAtMs), ("$expires", key.ExpiresAtMs), ("$by", key.CreatedBy)), cancellationToken);

    public ValueTask<ApiKeyRecord?> FindApiKeyByHashAsync(string hash, CancellationToken cancellationToken = default) =>
        RunAsync(c => Query(c, $"SELECT {ApiKeyColumns} FROM api_keys WHERE hash = $h", ReadApiKey, ("$h", hash)).FirstOrDefault(), cancellationToken);

    public ValueTask<ApiKeyRecord?> GetApiKeyAsync(string id, CancellationToken cancellationToken = default) =>
        RunAsync(c => Query(c, $"SELECT {ApiKeyColumns} FROM api_keys WHERE id = $id", ReadApiKey, ("$id", id)).FirstOrDefault(), cancellationToken);

    public ValueTask<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(string? userName, CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<ApiKeyRecord>>(c => userName is null
            ? Query(c, $"SELECT {ApiKeyColumns} FROM api_keys ORDER BY created_at", ReadApiKey)
            : Query(c, $"SELECT {ApiKeyColumns} FROM api_keys WHERE user_name = $u ORDER BY created_at", ReadApiKey, ("$u", userName)), cancellationToken);

    public ValueTask<bool> RevokeApiKeyAsync(string id, long nowMs, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "UPDATE api_keys SET revoked_at = $t WHERE id = $id AND revoked_at IS NULL", ("$t", nowMs), ("$id", id)) > 0, cancellationToken);

    public ValueTask<int> CountApiKeysAsync(CancellationToken cancellationToken = default) =>
        RunAsync(c => Convert.ToInt32(Scalar(c, "SELECT COUNT(*) FROM api_keys"), CultureInfo.InvariantCulture), cancellationToken);

    // ---- refresh tokens ----

    public ValueTask StoreRefreshTokenAsync(RefreshTokenRecord token, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, "INSERT INTO refresh_tokens (hash, family, user_name, created_at, expires_at) VALUES ($h, $f, $u, $c, $e)",
            ("$h", token.Hash), ("$f", token.Family), ("$u", token.UserName), ("$c", token.CreatedAtMs), ("$e", token.ExpiresAtMs)), cancellationToken);

    public ValueTask<(RefreshOutcome Outcome, RefreshTokenRecord? Token)> UseRefreshTokenAsync(string hash, long nowMs, string nextHash, long nextExpiresAtMs, CancellationToken cancellationToken = default) =>
        RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            var token = Query(c, "SELECT hash, family, user_name, created_at, expires_at, used_at, revoked_at FROM refresh_tokens WHERE hash = $h",
                static r => (Record: new RefreshTokenRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetInt64(4)), Used: !r.IsDBNull(5) || !r.IsDBNull(6)),
                ("$h", hash)).FirstOrDefault();
            if (token.Record is null)
            {
                return (RefreshOutcome.Invalid, (RefreshTokenRecord?)null);
            }
            if (token.Used)
            {
                // Presented again: someone else holds a copy. End the whole login (family).
                NonQuery(c, "UPDATE refresh_tokens SET revoked_at = $t WHERE family = $f AND revoked_at IS NULL", ("$t", nowMs), ("$f", token.Record.Family));
                tx.Commit();
                return (RefreshOutcome.Reused, token.Record);
            }
            if (token.Record.ExpiresAtMs <= nowMs)
            {
                return (RefreshOutcome.Invalid, token.Record);
            }
            if (Scalar(c, "SELECT 1 FROM refresh_tokens WHERE family = $f AND revoked_at IS NOT NULL LIMIT 1", ("$f", token.Record.Family)) is not null)
            {
                return (RefreshOutcome.Reused, token.Record);
            }
            NonQuery(c, "UPDATE refresh_tokens SET used_at = $t WHERE hash = $h", ("$t", nowMs), ("$h", hash));
            NonQuery(c, "INSERT INTO refresh_tokens (hash, family, user_name, created_at, expires_at) VALUES ($h, $f, $u, $c, $e)",
                ("$h", nextHash), ("$f", token.Record.Family), ("$u", token.Record.UserName), ("$c", nowMs), ("$e", nextExpiresAtMs));
            // Used tokens past their expiry are kept no longer than needed for reuse detection.
            NonQuery(c, "DELETE FROM refresh_tokens WHERE expires_at <= $t", ("$t", nowMs));
            tx.Commit();
            return (RefreshOutcome.Rotated, token.Record);
        }, cancellationToken);

    public ValueTask<string?> RevokeRefreshFamilyAsync(string hash, long nowMs, CancellationToken cancellationToken = default) =>
        RunAsync(c =>
        {
            var token = Query(c, "SELECT family, user_name FROM refresh_tokens WHERE hash = $h",
                static r => (Family: r.GetString(0), User: r.GetString(1)), ("$h", hash)).FirstOrDefault();
            if (token.Family is null)
            {
                return (string?)null;
            }
            NonQuery(c, "UPDATE refresh_tokens SET revoked_at = $t WHERE family = $f AND revoked_at IS NULL", ("$t", nowMs), ("$f", token.Family));
            return token.User;
        }, cancellationToken);

    public ValueTask RevokeRefreshTokensAsync(string userName, long nowMs, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, "UPDATE refresh_tokens SET revoked_at = $t WHERE user_name = $u AND revoked_at IS NULL", ("$t", nowMs), ("$u", userName)), cancellationToken);

    // ---- invites ----

    public ValueTask CreateInviteAsync(InviteRecord invite, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, "INSERT INTO invites (code, role, max_uses, used_count, created_by, created_at, expires_at) VALUES ($c, $r, $m, 0, $by, $t, $e)",
            ("$c", invite.Code), ("$r", HubRoles.Name(invite.Role)), ("$m", invite.MaxUses), ("$by", invite.CreatedBy), ("$t", invite.CreatedAtMs), ("$e", invite.ExpiresAtMs)), cancellationToken);

    public ValueTask<IReadOnlyList<InviteRecord>> ListInvitesAsync(CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<InviteRecord>>(c => Query(c, "SELECT code, role, max_uses, used_count, created_by, created_at, expires_at, revoked_at FROM invites ORDER BY created_at",
            static r => new InviteRecord(r.GetString(0), HubRoles.Parse(r.GetString(1)), r.GetInt32(2), r.GetInt32(3), r.GetString(4), r.GetInt64(5), r.GetInt64(6), r.IsDBNull(7) ? null : r.GetInt64(7))), cancellationToken);

    public ValueTask<bool> RevokeInviteAsync(string code, long nowMs, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "UPDATE invites SET revoked_at = $t WHERE code = $c AND revoked_at IS NULL", ("$t", nowMs), ("$c", code)) > 0, cancellationToken);

    // ---- audit ----

    public ValueTask AppendAuditAsync(AuditEntry entry, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, "INSERT INTO audit (ts, event, actor, subject, address, detail) VALUES ($t, $e, $a, $s, $ad, $d)",
            ("$t", entry.TimestampMs), ("$e", entry.Event), ("$a", entry.Actor), ("$s", entry.Subject), ("$ad", entry.Address), ("$d", entry.Detail)), cancellationToken);

    public ValueTask<IReadOnlyList<AuditEntry>> ReadAuditAsync(long afterSeq, int limit, CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<AuditEntry>>(c => Query(c, "SELECT seq, ts, event, actor, subject, address, detail FROM audit WHERE seq > $a ORDER BY seq LIMIT $l",
            static r => new AuditEntry(r.GetInt64(0), r.GetInt64(1), r.GetString(2), NullableString(r, 3), NullableString(r, 4), NullableString(r, 5), NullableString(r, 6)),
            ("$a", afterSeq), ("$l", limit)), cancellationToken);

    // ---- channels ----

    public ValueTask<bool> CreateChannelAsync(string topic, bool isPrivate, string createdBy, long nowMs, CancellationToken cancellationToken = default) =>
        RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            if (NonQuery(c, "INSERT INTO channels (topic, private, created_by, created_at) VALUES ($t, $p, $by, $now) ON CONFLICT(topic) DO NOTHING",
                ("$t", topic), ("$p", isPrivate ? 1 : 0), ("$by", createdBy), ("$now", nowMs)) == 0)
            {
                return false;
            }
            NonQuery(c, "INSERT INTO channel_members (topic, user_name, admin, added_at) VALUES ($t, $u, 1, $now)", ("$t", topic), ("$u", createdBy), ("$now", nowMs));
            tx.Commit();
            return true;
        }, cancellationToken);

    public ValueTask<IReadOnlyList<ChannelRecord>> ListChannelsAsync(CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<ChannelRecord>>(c =>
        {
            var members = Query(c, "SELECT topic, user_name, admin FROM channel_members ORDER BY topic, user_name",
                static r => (Topic: r.GetString(0), Member: new ChannelMember(r.GetString(1), r.GetInt64(2) != 0)))
                .GroupBy(m => m.Topic).ToDictionary(g => g.Key, g => (IReadOnlyList<ChannelMember>)[.. g.Select(m => m.Member)], StringComparer.Ordinal);
            return Query(c, "SELECT topic, private, created_by, created_at, deleted_at FROM channels ORDER BY topic",
                r => new ChannelRecord(r.GetString(0), r.GetInt64(1) != 0, r.GetString(2), r.GetInt64(3), r.IsDBNull(4) ? null : r.GetInt64(4),
                    members.TryGetValue(r.GetString(0), out var list) ? list : []));
        }, cancellationToken);

    public ValueTask<bool> SetChannelPrivateAsync(string topic, bool isPrivate, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "UPDATE channels SET private = $p WHERE topic = $t AND deleted_at IS NULL", ("$p", isPrivate ? 1 : 0), ("$t", topic)) > 0, cancellationToken);

    public ValueTask<bool> DeleteChannelAsync(string topic, long nowMs, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "UPDATE channels SET deleted_at = $now WHERE topic = $t AND deleted_at IS NULL", ("$now", nowMs), ("$t", topic)) > 0, cancellationToken);

    public ValueTask<bool> RenameChannelAsync(string from, string to, CancellationToken cancellationToken = default) =>
        RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            if (Scalar(c, "SELECT 1 FROM channels WHERE topic = $to", ("$to", to)) is not null)
            {
                return false;
            }
            NonQuery(c, "PRAGMA defer_foreign_keys = ON;");
            var renamed = NonQuery(c, "UPDATE channels SET topic = $to WHERE topic = $from AND deleted_at IS NULL", ("$to", to), ("$from", from)) > 0;
            NonQuery(c, "UPDATE channel_members SET topic = $to WHERE topic = $from", ("$to", to), ("$from", from));
            tx.Commit();
            return renamed;
        }, cancellationToken);

    public ValueTask SetChannelMemberAsync(string topic, string userName, bool isAdmin, long nowMs, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, """
            INSERT INTO channel_members (topic, user_name, admin, added_at) VALUES ($t, $u, $a, $now)
            ON CONFLICT(topic, user_name) DO UPDATE SET admin = excluded.admin
            """, ("$t", topic), ("$u", userName), ("$a", isAdmin ? 1 : 0), ("$now", nowMs)), cancellationToken);

    public ValueTask<bool> RemoveChannelMemberAsync(string topic, string userName, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "DELETE FROM channel_members WHERE topic = $t AND user_name = $u", ("$t", topic), ("$u", userName)) > 0, cancellationToken);

    // ---- groups ----

    public ValueTask<bool> CreateGroupAsync(string name, string createdBy, long nowMs, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "INSERT INTO groups (name, parent, created_by, created_at) VALUES ($n, $p, $by, $now) ON CONFLICT(name) DO NOTHING",
            ("$n", name), ("$p", GroupNames.Parent(name)), ("$by", createdBy), ("$now", nowMs)) > 0, cancellationToken);

    public ValueTask<IReadOnlyList<GroupRecord>> ListGroupsAsync(CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<GroupRecord>>(c =>
        {
            var members = Query(c, "SELECT group_name, user_name, lead FROM group_members ORDER BY group_name, user_name",
                static r => (Group: r.GetString(0), Member: new GroupMember(r.GetString(1), r.GetInt64(2) != 0)))
                .GroupBy(m => m.Group).ToDictionary(g => g.Key, g => (IReadOnlyList<GroupMember>)[.. g.Select(m => m.Member)], StringComparer.Ordinal);
            return Query(c, "SELECT name, created_by, created_at FROM groups ORDER BY name",
                r => new GroupRecord(r.GetString(0), r.GetString(1), r.GetInt64(2), members.TryGetValue(r.GetString(0), out var list) ? list : []));
        }, cancellationToken);

    public ValueTask<bool> DeleteGroupAsync(string name, CancellationToken cancellationToken = default) =>
        RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            NonQuery(c, "DELETE FROM group_members WHERE group_name = $n", ("$n", name));
            var deleted = NonQuery(c, "DELETE FROM groups WHERE name = $n", ("$n", name)) > 0;
            tx.Commit();
            return deleted;
        }, cancellationToken);

    public ValueTask SetGroupMemberAsync(string group, string userName, bool isLead, long nowMs, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, """
            INSERT INTO group_members (group_name, user_name, lead, added_at) VALUES ($g, $u, $l, $now)
            ON CONFLICT(group_name, user_name) DO UPDATE SET lead = excluded.lead
            """, ("$g", group), ("$u", userName), ("$l", isLead ? 1 : 0), ("$now", nowMs)), cancellationToken);

    public ValueTask<bool> RemoveGroupMemberAsync(string group, string userName, CancellationToken cancellationToken = default) =>
        RunAsync(c => NonQuery(c, "DELETE FROM group_members WHERE group_name = $g AND user_name = $u", ("$g", group), ("$u", userName)) > 0, cancellationToken);

    // ---- signing keys ----

    public ValueTask<IReadOnlyList<SigningKeyRecord>> GetSigningKeysAsync(CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<SigningKeyRecord>>(c => Query(c, "SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at DESC, kid",
            static r => new SigningKeyRecord(r.GetString(0), (byte[])r.GetValue(1), r.GetInt64(2))), cancellationToken);

    public ValueTask AddSigningKeyAsync(SigningKeyRecord key, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, "INSERT INTO signing_keys (kid, secret, created_at) VALUES ($k, $s, $t)", ("$k", key.Kid), ("$s", key.Secret), ("$t", key.CreatedAtMs)), cancellationToken);

    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    // ---- plumbing ----

    private ValueTask<T> RunAsync<T>(Func<SqliteConnection, T> work, CancellationToken cancellationToken) => _connection.RunAsync(work, cancellationToken);

    private async ValueTask RunVoidAsync(Func<SqliteConnection, int> work, CancellationToken cancellationToken) =>
        await RunAsync(work, cancellationToken);

    private static UserRecord ReadUser(SqliteDataReader r) =>
        new(r.GetString(0), HubRoles.Parse(r.GetString(1)), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetInt64(3), r.IsDBNull(4) ? null : r.GetInt64(4));

    public ValueTask SetTokensValidAfterAsync(string name, long validAfterMs, CancellationToken cancellationToken = default) =>
        RunVoidAsync(c => NonQuery(c, "UPDATE users SET tokens_valid_after = $t WHERE name = $n", ("$t", validAfterMs), ("$n", name)), cancellationToken);

    private static ApiKeyRecord ReadApiKey(SqliteDataReader r) =>
        new(r.GetString(0), r.GetString(1), NullableString(r, 2), HubRoles.Parse(r.GetString(3)),
            ApiKeyScopes.TryParse(r.GetString(4), out var scope) ? scope : ApiKeyScope.Read, NullableString(r, 5), r.GetString(6), r.GetInt64(7),
            r.IsDBNull(8) ? null : r.GetInt64(8), r.IsDBNull(9) ? null : r.GetInt64(9), NullableString(r, 10));

    private static string? NullableString(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static string? ReadMeta(SqliteConnection c, string key) => Scalar(c, "SELECT value FROM meta WHERE key = $k", ("$k", key)) as string;

    private static void WriteMeta(SqliteConnection c, string key, string value) =>
        NonQuery(c, "INSERT INTO meta (key, value) VALUES ($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value", ("$k", key), ("$v", value));
}
