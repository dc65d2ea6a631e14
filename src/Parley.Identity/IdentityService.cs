using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Parley.Identity.Crypto;

namespace Parley.Identity;

/// <summary>A freshly issued pair: a short-lived access token and a rotating refresh token.</summary>
public sealed record TokenPair(string AccessToken, long AccessExpiresAtMs, string RefreshToken, long RefreshExpiresAtMs, string UserName, HubRole Role);

/// <summary>What changed about someone's access, for live sockets to follow at once.</summary>
public enum CredentialChangeKind
{
    /// <summary>An API key was revoked: its sockets close with 4403.</summary>
    KeyRevoked,

    /// <summary>A user was banned: every socket of theirs closes with 4403.</summary>
    UserBanned,

    /// <summary>Every API key and refresh token of a user was revoked: their sockets close with 4403.</summary>
    UserCredentialsRevoked,

    /// <summary>An admin kicked a user: their sockets close with 4409.</summary>
    UserKicked,

    /// <summary>A user's role changed: their sockets carry on with the new role.</summary>
    RoleChanged,

    /// <summary>A channel's access changed (made private, a member removed, deleted): subscribers who may no longer be there are removed.</summary>
    ChannelAccessChanged,

    /// <summary>A channel was renamed (<see cref="CredentialChange.Topic"/> is the old name): every subscriber of the old name is removed.</summary>
    ChannelRenamed,
}

/// <summary>One change of access; <see cref="UserName"/> or <see cref="ApiKeyId"/> says whose.</summary>
public sealed record CredentialChange(CredentialChangeKind Kind, string? UserName, string? ApiKeyId, HubRole? Role = null, string? Topic = null);

/// <summary>A login challenge: sign (nonce, hub id, timestamp) with a device key before it expires.</summary>
public sealed record LoginChallenge(string Nonce, string HubId, long ExpiresAtMs);

/// <summary>
/// Identity and access in one place: registration (first user → owner, then invite / open / closed),
/// challenge-response login with Ed25519 device keys, access tokens (JWT) and rotating refresh tokens
/// with reuse detection, API keys, invites, and the audit log of all of it. Transport-free: the HTTP
/// endpoints and the socket authenticator call it.
/// </summary>
public sealed partial class IdentityService
{
    private const int MaxPendingChallenges = 100_000;

    // A valid public key that signs nothing anyone has (used only to spend the same time on unknown users).
    private static readonly byte[] TimingDummyKey = DeviceKeys.Generate().PublicKey;

    private readonly IIdentityStore _store;
    private readonly IdentityOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LoginThrottle _perUser;
    private readonly LoginThrottle _perAddress;
    private readonly ConcurrentDictionary<string, (string User, long ExpiresAtMs)> _challenges = new(StringComparer.Ordinal);
    private IReadOnlyList<SigningKeyRecord> _signingKeys = [];

    private IdentityService(IIdentityStore store, IdentityOptions options, TimeProvider time, ILogger logger)
    {
        _store = store;
        _options = options;
        _time = time;
        _logger = logger;
        _perUser = new LoginThrottle(options.LoginBurstPerUser, options.LoginRefillInterval, time);
        _perAddress = new LoginThrottle(options.LoginBurstPerAddress, options.LoginRefillInterval, time);
    }

    /// <summary>Starts the service over a store, creating the first signing key when there is none.</summary>
    public static async Task<IdentityService> StartAsync(IIdentityStore store, IdentityOptions options, TimeProvider time, ILogger logger, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        var service = new IdentityService(store, options, time ?? TimeProvider.System, logger);
        var keys = await store.GetSigningKeysAsync(cancellationToken);
        if (keys.Count == 0)
        {
            await store.AddSigningKeyAsync(new SigningKeyRecord(Secrets.NewId(), System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), service.NowMs), cancellationToken);
            keys = await store.GetSigningKeysAsync(cancellationToken);
        }
        service._signingKeys = keys;
        await service.LoadChannelsAsync(cancellationToken);
        await service.LoadGroupsAsync(cancellationToken);
        return service;
    }

    public string HubId => _store.HubId;

    /// <summary>Raised after a revocation, ban, kick or role change is stored, so live sockets follow at once.</summary>
    public event Action<CredentialChange>? CredentialsChanged;

    private void Raise(CredentialChange change) => CredentialsChanged?.Invoke(change);

    public IdentityOptions Options => _options;

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // ---- registration ----

    /// <summary>Registers a user with its first device key. Returns the role granted and the key's id.</summary>
    public async Task<(HubRole Role, string KeyId)> RegisterAsync(string name, byte[] publicKey, string? label, string? inviteCode, string? address, CancellationToken cancellationToken = default)
    {
        if (!Names.IsValid(name))
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_name", $"a user name is {Names.Rule}");
        }
        if (!DeviceKeys.IsValidPublicKey(publicKey))
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_public_key", "public_key must be a 32-byte Ed25519 public key, base64url-encoded");
        }
        Throttle(null, address);
        var key = new DeviceKeyRecord(Secrets.NewId(), name, publicKey, label, NowMs, null);
        var (outcome, role) = await _store.RegisterAsync(name, key, string.IsNullOrEmpty(inviteCode) ? null : inviteCode, _options.Registration, NowMs, cancellationToken);
        if (outcome != RegisterOutcome.Registered)
        {
            await AuditAsync("register.refused", null, name, address, OutcomeCode(outcome), cancellationToken);
            throw outcome switch
            {
                RegisterOutcome.NameTaken => new IdentityException(IdentityErrorKind.Conflict, "name_taken", $"the name '{name}' is taken; pick another"),
                RegisterOutcome.KeyTaken => new IdentityException(IdentityErrorKind.Conflict, "key_taken", "this public key is already registered; generate a new key pair for a new user"),
                RegisterOutcome.InviteRequired => new IdentityException(IdentityErrorKind.Forbidden, "invite_required", "this hub registers users by invite only: ask an admin for an invite code"),
                RegisterOutcome.RegistrationClosed => new IdentityException(IdentityErrorKind.Forbidden, "registration_closed", "this hub does not accept new users"),
                RegisterOutcome.InviteNotFound => new IdentityException(IdentityErrorKind.NotFound, "invite_not_found", "no such invite code"),
                RegisterOutcome.InviteRevoked => new IdentityException(IdentityErrorKind.Gone, "invite_revoked", "this invite was revoked; ask an admin for a new one"),
                RegisterOutcome.InviteExpired => new IdentityException(IdentityErrorKind.Gone, "invite_expired", "this invite has expired; ask an admin for a new one"),
                RegisterOutcome.InviteExhausted => new IdentityException(IdentityErrorKind.Gone, "invite_exhausted", "this invite has been used up; ask an admin for a new one"),
                _ => new IdentityException(IdentityErrorKind.BadRequest, "register_failed", "registration failed"),
            };
        }
        await AuditAsync("register", name, name, address, string.Create(CultureInfo.InvariantCulture, $"role={HubRoles.Name(role)} key={key.Id}{(inviteCode is null ? "" : " invite=" + InviteCodePrefix(inviteCode))}"), cancellationToken);
        return (role, key.Id);
    }

    // ---- login ----

    /// <summary>
    /// A single-use nonce bound to <paramref name="name"/>. Issued for any well-formed name, registered
    /// or not, so the answer says nothing about who exists.
    /// </summary>
    public LoginChallenge IssueChallenge(string name, string? address)
    {
        if (!Names.IsValid(name))
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_name", $"a user name is {Names.Rule}");
        }
        Throttle(null, address);
        var now = NowMs;
        if (_challenges.Count >= MaxPendingChallenges)
        {
            foreach (var (nonce, pending) in _challenges)
            {
                if (pending.ExpiresAtMs <= now)
                {
                    _challenges.TryRemove(nonce, out _);
                }
            }
            if (_challenges.Count >= MaxPendingChallenges)
            {
                throw new IdentityException(IdentityErrorKind.TooManyRequests, "too_many_attempts", "too many logins in progress; try again shortly") { RetryAfterSeconds = 5 };
            }
        }
        var expires = now + (long)_options.ChallengeLifetime.TotalMilliseconds;
        var value = Secrets.RandomBase64Url(32);
        _challenges[value] = (name, expires);
        return new LoginChallenge(value, HubId, expires);
    }

    /// <summary>Checks a signed challenge and issues tokens. Every failure is audited; none says whether the user exists.</summary>
    public async Task<TokenPair> LoginAsync(string name, string nonce, long timestampMs, byte[] signature, string? address, CancellationToken cancellationToken = default)
    {
        if (!Names.IsValid(name))
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_name", $"a user name is {Names.Rule}");
        }
        // Per address every attempt counts; per user only failures do (so nobody can lock a user out by
        // asking for challenges in their name), and a user with no failures left is refused up front.
        Throttle(null, address);
        if (_perUser.IsExhausted("u:" + name, out var userWait))
        {
            throw TooMany(userWait);
        }
        try
        {
            return await LoginCoreAsync(name, nonce, timestampMs, signature, address, cancellationToken);
        }
        catch (IdentityException ex) when (ex.Kind == IdentityErrorKind.Unauthorized)
        {
            _perUser.TryTake("u:" + name, out _);
            throw;
        }
    }

    private async Task<TokenPair> LoginCoreAsync(string name, string nonce, long timestampMs, byte[] signature, string? address, CancellationToken cancellationToken)
    {
        var now = NowMs;
        // Single use: the nonce is gone from here on, whatever happens next.
        if (!_challenges.TryRemove(nonce ?? "", out var challenge) || challenge.User != name || challenge.ExpiresAtMs <= now)
        {
            await AuditAsync("login.failed", null, name, address, "bad_nonce", cancellationToken);
            throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_nonce", "the challenge is unknown, used or expired: request a new one and sign it");
        }
        if (Math.Abs(now - timestampMs) > _options.ClockSkew.TotalMilliseconds)
        {
            await AuditAsync("login.failed", null, name, address, "bad_timestamp", cancellationToken);
            throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_timestamp", string.Create(CultureInfo.InvariantCulture, $"the signed timestamp is more than {_options.ClockSkew.TotalSeconds:0} s from the hub's clock: check this machine's clock"));
        }
        var message = DeviceKeys.LoginMessage(HubId, name, nonce!, timestampMs);
        var keys = await _store.GetDeviceKeysAsync(name, cancellationToken);
        var key = keys.FirstOrDefault(k => DeviceKeys.Verify(k.PublicKey, message, signature));
        if (keys.Count == 0)
        {
            // An unknown user costs the same signature check as a known one: timing says nothing.
            DeviceKeys.Verify(TimingDummyKey, message, signature);
        }
        var user = key is null ? null : await _store.GetUserAsync(name, cancellationToken);
        if (key is null || user is null)
        {
            await AuditAsync("login.failed", null, name, address, "bad_signature", cancellationToken);
            throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_credentials", "login failed: unknown user or key, or a bad signature");
        }
        if (user.IsBanned)
        {
            await AuditAsync("login.failed", null, name, address, "banned", cancellationToken);
            throw new IdentityException(IdentityErrorKind.Forbidden, "banned", "this user is banned from the hub");
        }
        var pair = await IssueAsync(user, Secrets.NewId(), cancellationToken);
        await AuditAsync("login", name, name, address, "key=" + key.Id, cancellationToken);
        return pair;
    }

    /// <summary>Rotates a refresh token. A token used twice revokes its whole family (someone else has a copy).</summary>
    public async Task<TokenPair> RefreshAsync(string refreshToken, string? address, CancellationToken cancellationToken = default)
    {
        Throttle(null, address);
        if (string.IsNullOrEmpty(refreshToken) || !refreshToken.StartsWith(Secrets.RefreshTokenPrefix, StringComparison.Ordinal))
        {
            throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_grant", "the refresh token is not valid: log in again");
        }
        // The next refresh token is stored in the same transaction that uses this one (see IIdentityStore).
        var next = Secrets.New(Secrets.RefreshTokenPrefix);
        var nextExpires = NowMs + (long)_options.RefreshTokenLifetime.TotalMilliseconds;
        var (outcome, token) = await _store.UseRefreshTokenAsync(Secrets.Hash(refreshToken), NowMs, Secrets.Hash(next), nextExpires, cancellationToken);
        if (outcome == RefreshOutcome.Reused)
        {
            await AuditAsync("refresh.reused", null, token?.UserName, address, "family revoked", cancellationToken);
            ServerSideLog.RefreshReuse(_logger, token?.UserName ?? "?");
        }
        if (outcome != RefreshOutcome.Rotated || token is null)
        {
            throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_grant", "the refresh token is not valid (expired, revoked or already used): log in again");
        }
        var user = await _store.GetUserAsync(token.UserName, cancellationToken);
        if (user is null || user.IsBanned)
        {
            throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_grant", "the refresh token is not valid: log in again");
        }
        return IssueAccess(user, next, nextExpires);
    }

    /// <summary>True when <paramref name="name"/> is a registered user who is not banned (direct messages reach only them).</summary>
    public async Task<bool> IsActiveUserAsync(string name, CancellationToken cancellationToken = default) =>
        Names.IsValid(name) && await _store.GetUserAsync(name, cancellationToken) is { IsBanned: false };

    /// <summary>
    /// Ends a login: the refresh token's whole family is revoked, so neither it nor any token rotated from
    /// it works again. Access tokens already issued stay valid until they expire (at most the access token
    /// lifetime). Unknown or malformed tokens are refused with <c>invalid_grant</c>; a second logout with the
    /// same token succeeds (nothing left to revoke).
    /// </summary>
    public async Task<string> LogoutAsync(string refreshToken, string? address, CancellationToken cancellationToken = default)
    {
        Throttle(null, address);
        if (string.IsNullOrEmpty(refreshToken) || !refreshToken.StartsWith(Secrets.RefreshTokenPrefix, StringComparison.Ordinal))
        {
            throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_grant", "the refresh token is not valid");
        }
        var user = await _store.RevokeRefreshFamilyAsync(Secrets.Hash(refreshToken), NowMs, cancellationToken)
            ?? throw new IdentityException(IdentityErrorKind.Unauthorized, "invalid_grant", "the refresh token is not valid (expired or unknown)");
        await AuditAsync("logout", user, user, address, null, cancellationToken);
        return user;
    }

    // A new login: a new refresh token family.
    private async Task<TokenPair> IssueAsync(UserRecord user, string family, CancellationToken cancellationToken)
    {
        var refresh = Secrets.New(Secrets.RefreshTokenPrefix);
        var refreshExpires = NowMs + (long)_options.RefreshTokenLifetime.TotalMilliseconds;
        await _store.StoreRefreshTokenAsync(new RefreshTokenRecord(Secrets.Hash(refresh), family, user.Name, NowMs, refreshExpires), cancellationToken);
        return IssueAccess(user, refresh, refreshExpires);
    }

    private TokenPair IssueAccess(UserRecord user, string refresh, long refreshExpires)
    {
        var now = NowMs;
        var accessExpires = now + (long)_options.AccessTokenLifetime.TotalMilliseconds;
        var access = AccessTokens.Issue(_signingKeys[0], HubId, new AccessTokenClaims(user.Name, user.Role, now / 1000, accessExpires / 1000, Secrets.NewId()));
        return new TokenPair(access, accessExpires / 1000 * 1000, refresh, refreshExpires, user.Name, user.Role);
    }

    // ---- credentials on sockets and HTTP requests ----

    /// <summary>
    /// Who presents <paramref name="credential"/> (an access token or an API key), or a reason code:
    /// <c>missing</c>, <c>expired</c>, <c>invalid</c>, <c>revoked</c>, <c>banned</c>.
    /// </summary>
    public async Task<(Caller? Caller, string? Error)> AuthenticateAsync(string? credential, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrEmpty(credential))
        {
            return (null, "missing");
        }
        if (credential.StartsWith(Secrets.ApiKeyPrefix, StringComparison.Ordinal))
        {
            var key = await _store.FindApiKeyByHashAsync(Secrets.Hash(credential), cancellationToken);
            if (key is null)
            {
                return (null, "invalid");
            }
            if (key.RevokedAtMs is not null)
            {
                return (null, "revoked");
            }
            if (key.ExpiresAtMs is { } expires && expires <= NowMs)
            {
                return (null, "expired");
            }
            var role = HubRoles.Min(key.Role, ApiKeyScopes.Ceiling(key.Scope));
            if (key.UserName is not null)
            {
                var owner = await _store.GetUserAsync(key.UserName, cancellationToken);
                if (owner is null)
                {
                    return (null, "invalid");
                }
                if (owner.IsBanned)
                {
                    return (null, "banned");
                }
                role = HubRoles.Min(owner.Role, ApiKeyScopes.Ceiling(key.Scope));
            }
            return (new Caller(key.UserName ?? Names.ForUserlessKey(key.Name), role, key.UserName, key.Id, key.TopicPattern, key.ExpiresAtMs), null);
        }
        if (!AccessTokens.LooksLikeJwt(credential))
        {
            return (null, "invalid");
        }
        if (!AccessTokens.TryValidate(credential, _signingKeys, HubId, NowMs / 1000, out var claims, out var error))
        {
            return (null, error);
        }
        var user = await _store.GetUserAsync(claims!.Subject, cancellationToken);
        if (user is null)
        {
            return (null, "invalid");
        }
        if (user.IsBanned)
        {
            return (null, "banned");
        }
        if (user.TokensValidAfterMs is { } validAfter && claims.IssuedAt < validAfter / 1000)
        {
            return (null, "revoked"); // issued before the user's credentials were revoked
        }
        // The role is read now, not from the token: a demotion takes effect on the next connect.
        return (new Caller(user.Name, user.Role, user.Name, null, null, claims.ExpiresAt * 1000), null);
    }

    // ---- API keys ----

    /// <summary>
    /// Creates an API key for <paramref name="caller"/> (or, for admins, for another user or for the hub
    /// itself with <paramref name="forUser"/> = null and <paramref name="hubKeyRole"/>). The secret is
    /// returned once and stored only hashed.
    /// </summary>
    public async Task<(ApiKeyRecord Key, string Secret)> CreateApiKeyAsync(Caller caller, string name, ApiKeyScope scope, string? topicPattern, TimeSpan? lifetime, string? forUser, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (!Names.IsValid(name))
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_name", $"a key name is {Names.Rule}");
        }
        if (topicPattern is not null && !TopicPatterns.IsValid(topicPattern))
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_topics", "topics must be a topic name, optionally with '*' wildcards (e.g. room:ci-*)");
        }
        if (lifetime is { } l && l <= TimeSpan.Zero)
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_expiry", "a key's lifetime must be positive");
        }
        // An API key may create keys only with an admin scope (a read or write key is not a login), and
        // never wider than itself: the new key's role is capped by the caller's, its topics by the caller's.
        if (caller.ApiKeyId is not null && !caller.IsAdmin)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "an API key cannot create keys unless it has admin scope; log in instead");
        }
        if (caller.TopicPattern is not null && topicPattern != caller.TopicPattern)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"a key restricted to {caller.TopicPattern} can only create keys with the same topics");
        }
        var owner = forUser ?? caller.UserName;
        HubRole role;
        if (owner is null)
        {
            RequireAdmin(caller);
            role = caller.Role; // a hub key acts with at most the creator's role
        }
        else
        {
            var user = await _store.GetUserAsync(owner, cancellationToken)
                ?? throw new IdentityException(IdentityErrorKind.NotFound, "user_not_found", $"no user '{owner}'");
            if (owner != caller.UserName)
            {
                // Keys for someone else: the same rule as managing them (admins for users below them, owners for anyone).
                RequireAdmin(caller);
                if (caller.Role < HubRole.Owner && user.Role >= caller.Role)
                {
                    throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "only an owner creates keys for admins and owners");
                }
            }
            role = HubRoles.Min(user.Role, caller.Role);
        }
        if (scope == ApiKeyScope.Admin && role < HubRole.Admin)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "an admin-scoped key needs an admin owner and creator");
        }
        var now = NowMs;
        var secret = Secrets.New(Secrets.ApiKeyPrefix);
        var key = new ApiKeyRecord(Secrets.NewId(), name, owner, role, scope, topicPattern, Secrets.Hash(secret), now,
            lifetime is { } life ? now + (long)life.TotalMilliseconds : null, null, caller.Name);
        await _store.CreateApiKeyAsync(key, cancellationToken);
        await AuditAsync("api_key.created", caller.Name, owner ?? Names.ForUserlessKey(name), null, $"id={key.Id} scope={ApiKeyScopes.Name(scope)}{(topicPattern is null ? "" : " topics=" + topicPattern)}", cancellationToken);
        return (key, secret);
    }

    /// <summary>The caller's keys; every key for admins.</summary>
    public async Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(Caller caller, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (caller.IsAdmin)
        {
            return await _store.ListApiKeysAsync(null, cancellationToken);
        }
        return caller.UserName is null ? [] : await _store.ListApiKeysAsync(caller.UserName, cancellationToken);
    }

    /// <summary>Revokes a key (its owner or an admin).</summary>
    public async Task RevokeApiKeyAsync(Caller caller, string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var key = await _store.GetApiKeyAsync(id, cancellationToken);
        // Hub keys (no user) are revoked by admins only; a non-admin API key revokes nothing (it is not a login).
        var allowed = caller.IsAdmin || (caller.ApiKeyId is null && key?.UserName is not null && key.UserName == caller.UserName);
        if (key is null || !allowed)
        {
            throw new IdentityException(IdentityErrorKind.NotFound, "key_not_found", $"no key '{id}' that you may revoke");
        }
        await _store.RevokeApiKeyAsync(id, NowMs, cancellationToken);
        await AuditAsync("api_key.revoked", caller.Name, key.UserName ?? Names.ForUserlessKey(key.Name), null, "id=" + id, cancellationToken);
        Raise(new CredentialChange(CredentialChangeKind.KeyRevoked, key.UserName, id));
    }

    // ---- users (admin) ----

    public async Task<IReadOnlyList<UserRecord>> ListUsersAsync(Caller caller, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        RequireAdmin(caller);
        return await _store.ListUsersAsync(cancellationToken);
    }

    /// <summary>Changes a user's role. Admins manage guests and members; only an owner touches admins or makes owners.</summary>
    public async Task SetRoleAsync(Caller caller, string name, HubRole role, CancellationToken cancellationToken = default)
    {
        var user = await RequireManageableAsync(caller, name, cancellationToken);
        if (role >= HubRole.Admin && caller.Role < HubRole.Owner)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "only an owner grants admin or owner");
        }
        await _store.SetRoleAsync(name, role, cancellationToken);
        await AuditAsync("user.role", caller.Name, name, null, $"{HubRoles.Name(user.Role)} -> {HubRoles.Name(role)}", cancellationToken);
        Raise(new CredentialChange(CredentialChangeKind.RoleChanged, name, null, role));
    }

    /// <summary>Bans a user: no login, no refresh, no key works, and their live sockets close.</summary>
    public async Task BanAsync(Caller caller, string name, CancellationToken cancellationToken = default)
    {
        await RequireManageableAsync(caller, name, cancellationToken);
        await _store.SetBannedAsync(name, NowMs, cancellationToken);
        await _store.RevokeRefreshTokensAsync(name, NowMs, cancellationToken);
        await _store.SetTokensValidAfterAsync(name, NowMs, cancellationToken);
        await AuditAsync("user.banned", caller.Name, name, null, null, cancellationToken);
        Raise(new CredentialChange(CredentialChangeKind.UserBanned, name, null));
    }

    public async Task UnbanAsync(Caller caller, string name, CancellationToken cancellationToken = default)
    {
        await RequireManageableAsync(caller, name, cancellationToken);
        await _store.SetBannedAsync(name, null, cancellationToken);
        await AuditAsync("user.unbanned", caller.Name, name, null, null, cancellationToken);
    }

    /// <summary>Closes a user's live sockets (4409). Nothing is revoked: they may log in and connect again.</summary>
    public async Task KickAsync(Caller caller, string name, CancellationToken cancellationToken = default)
    {
        await RequireManageableAsync(caller, name, cancellationToken);
        await AuditAsync("user.kicked", caller.Name, name, null, null, cancellationToken);
        Raise(new CredentialChange(CredentialChangeKind.UserKicked, name, null));
    }

    /// <summary>
    /// Revokes every API key and refresh token of a user and closes their sockets. Their device keys
    /// stay: they can log in again (ban them to stop that).
    /// </summary>
    public async Task RevokeUserCredentialsAsync(Caller caller, string name, CancellationToken cancellationToken = default)
    {
        await RequireManageableAsync(caller, name, cancellationToken);
        var now = NowMs;
        foreach (var key in await _store.ListApiKeysAsync(name, cancellationToken))
        {
            if (key.RevokedAtMs is null)
            {
                await _store.RevokeApiKeyAsync(key.Id, now, cancellationToken);
            }
        }
        await _store.RevokeRefreshTokensAsync(name, now, cancellationToken);
        await _store.SetTokensValidAfterAsync(name, now, cancellationToken);
        await AuditAsync("user.credentials_revoked", caller.Name, name, null, null, cancellationToken);
        Raise(new CredentialChange(CredentialChangeKind.UserCredentialsRevoked, name, null));
    }

    // An admin acts on users below them; an owner on anyone but themself.
    private async Task<UserRecord> RequireManageableAsync(Caller caller, string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        RequireAdmin(caller);
        var user = await _store.GetUserAsync(name, cancellationToken)
            ?? throw new IdentityException(IdentityErrorKind.NotFound, "user_not_found", $"no user '{name}'");
        if (user.Name == caller.UserName)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "you cannot do this to yourself");
        }
        if (caller.Role < HubRole.Owner && user.Role >= caller.Role)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "only an owner manages admins and owners");
        }
        return user;
    }

    /// <summary>
    /// On a hub with no users and no keys: creates the initial owner key (a hub key with role owner) and
    /// returns its secret, to be written where only the hub's operator can read it. Otherwise null.
    /// </summary>
    public async Task<string?> CreateInitialOwnerKeyAsync(CancellationToken cancellationToken = default)
    {
        if ((await _store.ListUsersAsync(cancellationToken)).Count > 0 || await _store.CountApiKeysAsync(cancellationToken) > 0)
        {
            return null;
        }
        var secret = Secrets.New(Secrets.ApiKeyPrefix);
        var key = new ApiKeyRecord(Secrets.NewId(), "initial-owner", null, HubRole.Owner, ApiKeyScope.Admin, null, Secrets.Hash(secret), NowMs, null, null, "hub");
        await _store.CreateApiKeyAsync(key, cancellationToken);
        await AuditAsync("api_key.created", "hub", Names.ForUserlessKey(key.Name), null, $"id={key.Id} scope=admin initial owner key", cancellationToken);
        return secret;
    }

    // ---- invites ----

    public async Task<InviteRecord> CreateInviteAsync(Caller caller, HubRole role, int maxUses, TimeSpan? lifetime, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        RequireAdmin(caller);
        if (role >= HubRole.Owner || role > caller.Role || (role >= HubRole.Admin && caller.Role < HubRole.Owner))
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "an invite grants at most member (guest or member); only an owner invites admins; nobody invites owners");
        }
        if (maxUses is < 1 or > 10_000)
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_max_uses", "max_uses must be between 1 and 10000");
        }
        var life = lifetime ?? _options.InviteLifetime;
        if (life <= TimeSpan.Zero)
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_expiry", "an invite's lifetime must be positive");
        }
        var now = NowMs;
        var invite = new InviteRecord("inv_" + Secrets.RandomBase64Url(18), role, maxUses, 0, caller.Name, now, now + (long)life.TotalMilliseconds, null);
        await _store.CreateInviteAsync(invite, cancellationToken);
        await AuditAsync("invite.created", caller.Name, null, null, string.Create(CultureInfo.InvariantCulture, $"invite={InviteCodePrefix(invite.Code)} role={HubRoles.Name(role)} max_uses={maxUses}"), cancellationToken);
        return invite;
    }

    public async Task<IReadOnlyList<InviteRecord>> ListInvitesAsync(Caller caller, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        RequireAdmin(caller);
        return await _store.ListInvitesAsync(cancellationToken);
    }

    public async Task RevokeInviteAsync(Caller caller, string code, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        RequireAdmin(caller);
        if (!await _store.RevokeInviteAsync(code, NowMs, cancellationToken))
        {
            throw new IdentityException(IdentityErrorKind.NotFound, "invite_not_found", "no such invite code");
        }
        await AuditAsync("invite.revoked", caller.Name, null, null, "invite=" + InviteCodePrefix(code), cancellationToken);
    }

    // ---- audit ----

    public async Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(Caller caller, long afterSeq, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        RequireAdmin(caller);
        return await _store.ReadAuditAsync(afterSeq, Math.Clamp(limit, 1, 1000), cancellationToken);
    }

    private Task AuditAsync(string @event, string? actor, string? subject, string? address, string? detail, CancellationToken cancellationToken) =>
        _store.AppendAuditAsync(new AuditEntry(0, NowMs, @event, actor, subject, address, detail), cancellationToken).AsTask();

    // ---- helpers ----

    private static void RequireAdmin(Caller caller)
    {
        if (!caller.IsAdmin)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "this needs an admin");
        }
    }

    private void Throttle(string? name, string? address)
    {
        if (address is not null && !_perAddress.TryTake("a:" + address, out var wait))
        {
            throw TooMany(wait);
        }
        if (name is not null && !_perUser.TryTake("u:" + name, out wait))
        {
            throw TooMany(wait);
        }
    }

    private static IdentityException TooMany(TimeSpan wait) =>
        new(IdentityErrorKind.TooManyRequests, "too_many_attempts", "too many login attempts; wait and try again") { RetryAfterSeconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) };

    // Invite codes are secrets of a sort: logs and the audit keep only enough to tell them apart.
    private static string InviteCodePrefix(string code) => code.Length <= 8 ? "…" : code[..8] + "…";

    private static string OutcomeCode(RegisterOutcome outcome) => outcome switch
    {
        RegisterOutcome.NameTaken => "name_taken",
        RegisterOutcome.KeyTaken => "key_taken",
        RegisterOutcome.InviteRequired => "invite_required",
        RegisterOutcome.RegistrationClosed => "registration_closed",
        RegisterOutcome.InviteNotFound => "invite_not_found",
        RegisterOutcome.InviteRevoked => "invite_revoked",
        RegisterOutcome.InviteExpired => "invite_expired",
        RegisterOutcome.InviteExhausted => "invite_exhausted",
        _ => "registered",
    };
}

internal static partial class ServerSideLog
{
    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "A used refresh token of {User} was presented again: its token family is revoked (a copy may have leaked)")]
    public static partial void RefreshReuse(ILogger logger, string user);
}
