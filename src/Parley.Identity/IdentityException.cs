namespace Parley.Identity;

/// <summary>What kind of refusal an <see cref="IdentityException"/> is (the HTTP layer maps it to a status).</summary>
public enum IdentityErrorKind
{
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    TooManyRequests,
}

/// <summary>
/// A refused identity operation. <see cref="Code"/> is a stable machine reason (<c>invalid_credentials</c>,
/// <c>invite_expired</c>, …); the message says what to do. Neither ever contains a secret.
/// </summary>
public sealed class IdentityException(IdentityErrorKind kind, string code, string message) : Exception(message)
{
    public IdentityErrorKind Kind { get; } = kind;

    public string Code { get; } = code;

    /// <summary>Seconds to wait before trying again (for <see cref="IdentityErrorKind.TooManyRequests"/>).</summary>
    public int? RetryAfterSeconds { get; init; }
}
