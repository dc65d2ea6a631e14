namespace Parley.Identity;

/// <summary>
/// Where identities live. Implementations must not block the calling thread (callers include socket
/// I/O threads: docs/architecture.md) and must make each method atomic.
/// </summary>
public interface IIdentityStore : IAsyncDisposable
{
    /// <summary>This hub's id (created with the store; it goes into every login signature and token).</summary>
    string HubId { get; }

    // ---- users and device keys ----

    /// <summary>
    /// Registers <paramref name="name"/> with one device key, in one transaction: the first user ever
    /// becomes owner (no invite needed); otherwise an invite code is consumed atomically (its role is
    /// granted), or without one the user gets <paramref name="openRole"/> (null when registration is
    /// not open: <see cref="RegisterOutcome.InviteRequired"/> or <see cref="RegisterOutcome.RegistrationClosed"/>
    /// per <paramref name="policy"/>).
    /// </summary>
    ValueTask<(RegisterOutcome Outcome, HubRole Role)> RegisterAsync(string name, DeviceKeyRecord key, string? inviteCode, RegistrationPolicy policy, long nowMs, CancellationToken cancellationToken = default);

    ValueTask<UserRecord?> GetUserAsync(string name, CancellationToken cancellationToken = default);

    ValueTask<IReadOnlyList<UserRecord>> ListUsersAsync(CancellationToken cancellationToken = default);

    ValueTask<bool> SetRoleAsync(string name, HubRole role, CancellationToken cancellationToken = default);

    /// <summary>Refuses the user's access tokens issued before <paramref name="validAfterMs"/>.</summary>
    ValueTask SetTokensValidAfterAsync(string name, long validAfterMs, CancellationToken cancellationToken = default);

    /// <summary>Bans (a time) or unbans (null).</summary>
    ValueTask<bool> SetBannedAsync(string name, long? bannedAtMs, CancellationToken cancellationToken = default);

    /// <summary>The user's device keys that are not revoked.</summary>
    ValueTask<IReadOnlyList<DeviceKeyRecord>> GetDeviceKeysAsync(string userName, CancellationToken cancellationToken = default);

    // ---- API keys ----

    ValueTask CreateApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken = default);

    ValueTask<ApiKeyRecord?> FindApiKeyByHashAsync(string hash, CancellationToken cancellationToken = default);

    ValueTask<ApiKeyRecord?> GetApiKeyAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Keys of one user, or all keys when <paramref name="userName"/> is null; revoked ones included.</summary>
    ValueTask<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(string? userName, CancellationToken cancellationToken = default);

    ValueTask<bool> RevokeApiKeyAsync(string id, long nowMs, CancellationToken cancellationToken = default);

    ValueTask<int> CountApiKeysAsync(CancellationToken cancellationToken = default);

    // ---- refresh tokens ----

    ValueTask StoreRefreshTokenAsync(RefreshTokenRecord token, CancellationToken cancellationToken = default);

    /// <summary>
    /// Uses a refresh token once, atomically. A token presented a second time (or after revocation)
    /// revokes every token of its family and returns <see cref="RefreshOutcome.Reused"/>.
    /// </summary>
    /// <remarks>On <see cref="RefreshOutcome.Rotated"/> the <paramref name="next"/> token (same family and user; its
    /// Family and UserName are taken from the used token) is stored in the same transaction, so a concurrent
    /// reuse that revokes the family also revokes it. A family with any revoked token never rotates.</remarks>
    ValueTask<(RefreshOutcome Outcome, RefreshTokenRecord? Token)> UseRefreshTokenAsync(string hash, long nowMs, string nextHash, long nextExpiresAtMs, CancellationToken cancellationToken = default);

    /// <summary>
    /// Revokes the family of the refresh token with this hash (a logout): every token of it stops working.
    /// Returns the family's user, or null when no such token exists.
    /// </summary>
    ValueTask<string?> RevokeRefreshFamilyAsync(string hash, long nowMs, CancellationToken cancellationToken = default);

    /// <summary>Revokes every refresh token of a user (ban, revoke-user).</summary>
    ValueTask RevokeRefreshTokensAsync(string userName, long nowMs, CancellationToken cancellationToken = default);

    // ---- invites ----

    ValueTask CreateInviteAsync(InviteRecord invite, CancellationToken cancellationToken = default);

    ValueTask<IReadOnlyList<InviteRecord>> ListInvitesAsync(CancellationToken cancellationToken = default);

    ValueTask<bool> RevokeInviteAsync(string code, long nowMs, CancellationToken cancellationToken = default);

    // ---- audit ----

    ValueTask AppendAuditAsync(AuditEntry entry, CancellationToken cancellationToken = default);

    /// <summary>Entries with <c>seq &gt; afterSeq</c>, oldest first.</summary>
    ValueTask<IReadOnlyList<AuditEntry>> ReadAuditAsync(long afterSeq, int limit, CancellationToken cancellationToken = default);

    // ---- channels ----

    /// <summary>Registers a channel with its creator as channel admin; false when the topic is already registered (or was deleted).</summary>
    ValueTask<bool> CreateChannelAsync(string topic, bool isPrivate, string createdBy, long nowMs, CancellationToken cancellationToken = default);

    /// <summary>Every registered channel with its members (deleted ones included).</summary>
    ValueTask<IReadOnlyList<ChannelRecord>> ListChannelsAsync(CancellationToken cancellationToken = default);

    ValueTask<bool> SetChannelPrivateAsync(string topic, bool isPrivate, CancellationToken cancellationToken = default);

    ValueTask<bool> DeleteChannelAsync(string topic, long nowMs, CancellationToken cancellationToken = default);

    /// <summary>Renames a registered channel and its memberships; false when <paramref name="to"/> is registered.</summary>
    ValueTask<bool> RenameChannelAsync(string from, string to, CancellationToken cancellationToken = default);

    /// <summary>Adds or updates a member.</summary>
    ValueTask SetChannelMemberAsync(string topic, string userName, bool isAdmin, long nowMs, CancellationToken cancellationToken = default);

    ValueTask<bool> RemoveChannelMemberAsync(string topic, string userName, CancellationToken cancellationToken = default);

    // ---- groups ----

    /// <summary>Creates a group with no members; false when the name exists. The parent (if any) must exist: the caller checks, the store's foreign key refuses otherwise.</summary>
    ValueTask<bool> CreateGroupAsync(string name, string createdBy, long nowMs, CancellationToken cancellationToken = default);

    /// <summary>Every group with its direct members, ordered by name.</summary>
    ValueTask<IReadOnlyList<GroupRecord>> ListGroupsAsync(CancellationToken cancellationToken = default);

    /// <summary>Deletes a group and its memberships; false when there is no such group. A group with subgroups is refused by the store's foreign key: the caller checks first.</summary>
    ValueTask<bool> DeleteGroupAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Adds a member or updates their lead flag.</summary>
    ValueTask SetGroupMemberAsync(string group, string userName, bool isLead, long nowMs, CancellationToken cancellationToken = default);

    ValueTask<bool> RemoveGroupMemberAsync(string group, string userName, CancellationToken cancellationToken = default);

    // ---- signing keys ----

    /// <summary>Every signing key, newest first.</summary>
    ValueTask<IReadOnlyList<SigningKeyRecord>> GetSigningKeysAsync(CancellationToken cancellationToken = default);

    ValueTask AddSigningKeyAsync(SigningKeyRecord key, CancellationToken cancellationToken = default);
}
