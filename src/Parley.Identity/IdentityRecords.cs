namespace Parley.Identity;

/// <summary>A registered user.</summary>
/// <param name="TokensValidAfterMs">Access tokens issued before this time are refused (set when the user's credentials are revoked or the user is banned).</param>
public sealed record UserRecord(string Name, HubRole Role, long CreatedAtMs, long? BannedAtMs, long? TokensValidAfterMs = null)
{
    public bool IsBanned => BannedAtMs is not null;
}

/// <summary>One of a user's Ed25519 device keys (one per machine).</summary>
public sealed record DeviceKeyRecord(string Id, string UserName, byte[] PublicKey, string? Label, long CreatedAtMs, long? RevokedAtMs);

/// <summary>
/// An API key. Only <see cref="Hash"/> (SHA-256 of the secret) is stored; the secret is shown once.
/// <see cref="UserName"/> is null for keys that belong to the hub itself (the initial owner key), which
/// then act with <see cref="Role"/>.
/// </summary>
public sealed record ApiKeyRecord(
    string Id,
    string Name,
    string? UserName,
    HubRole Role,
    ApiKeyScope Scope,
    string? TopicPattern,
    string Hash,
    long CreatedAtMs,
    long? ExpiresAtMs,
    long? RevokedAtMs,
    string? CreatedBy);

/// <summary>A refresh token (stored hashed). Tokens of one login share a <see cref="Family"/>; each use rotates to a new one.</summary>
public sealed record RefreshTokenRecord(string Hash, string Family, string UserName, long CreatedAtMs, long ExpiresAtMs);

/// <summary>An invite code.</summary>
public sealed record InviteRecord(string Code, HubRole Role, int MaxUses, int UsedCount, string CreatedBy, long CreatedAtMs, long ExpiresAtMs, long? RevokedAtMs);

/// <summary>One audit log entry. <see cref="Seq"/> is assigned by the store.</summary>
public sealed record AuditEntry(long Seq, long TimestampMs, string Event, string? Actor, string? Subject, string? Address, string? Detail);

/// <summary>A key for signing access tokens; <see cref="Kid"/> names it in the token header.</summary>
public sealed record SigningKeyRecord(string Kid, byte[] Secret, long CreatedAtMs);

/// <summary>The outcome of a registration attempt, decided atomically by the store.</summary>
public enum RegisterOutcome
{
    Registered,
    NameTaken,
    KeyTaken,
    InviteRequired,
    RegistrationClosed,
    InviteNotFound,
    InviteRevoked,
    InviteExpired,
    InviteExhausted,
}

/// <summary>The outcome of presenting a refresh token.</summary>
public enum RefreshOutcome
{
    /// <summary>Valid and now used: issue the next token of the family.</summary>
    Rotated,

    /// <summary>Unknown or expired.</summary>
    Invalid,

    /// <summary>Already used or revoked: the whole family has been revoked.</summary>
    Reused,
}

/// <summary>A registered channel (a room topic with access rules). Unregistered rooms are public.</summary>
/// <param name="Topic">The room topic, e.g. <c>room:ops</c>.</param>
/// <param name="IsPrivate">Only members (and hub admins) may join.</param>
/// <param name="DeletedAtMs">Set once deleted: nobody joins it again and the name is not reused.</param>
public sealed record ChannelRecord(string Topic, bool IsPrivate, string CreatedBy, long CreatedAtMs, long? DeletedAtMs, IReadOnlyList<ChannelMember> Members);

/// <summary>A user's membership of a channel; channel admins manage its members.</summary>
public sealed record ChannelMember(string UserName, bool IsAdmin);
