namespace Parley.Client;

/// <summary>What a credential provider is asked for.</summary>
/// <param name="ForceRefresh">True when the last token was refused or has expired: return a new one, not a cached one.</param>
public readonly record struct CredentialRequest(bool ForceRefresh);

/// <summary>
/// Thrown by a credential provider that cannot produce a credential and never will without a person
/// (the refresh token was revoked, no key file): the client reports <c>auth_failed</c> and stops.
/// </summary>
public sealed class CredentialUnavailableException(string message) : Exception(message);

/// <summary>Settings for <see cref="ParleyClient"/>.</summary>
public sealed class ParleyClientOptions
{
    /// <summary>The hub's base URL, e.g. <c>http://127.0.0.1:4000</c> (the socket path is added).</summary>
    public required Uri Server { get; init; }

    /// <summary>Asked for a credential (access token or API key) on every dial; null means none.</summary>
    public Func<CredentialRequest, CancellationToken, ValueTask<string?>>? Credentials { get; init; }

    /// <summary>
    /// What this client is, for presence (the <c>client</c> connect param): <c>cli</c>, <c>agent</c>,
    /// <c>web</c>, <c>tui</c> or <c>service</c>. Null lets the hub decide (<c>service</c> for non-browsers).
    /// </summary>
    public string? ClientKind { get; init; }

    /// <summary>How often to heartbeat; a heartbeat unanswered by the next one means the socket is dead. Default 30 s.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Bound on dialing and the upgrade. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Bound on waiting for a reply to a push or join. Default 15 s.</summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The default <see cref="Backoff"/>: 1, 2, 5, 10, 30 s.</summary>
    public static readonly IReadOnlyList<TimeSpan> DefaultBackoff =
        [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30)];

    /// <summary>Waits between reconnect attempts (the last repeats), each with ±20% jitter. Default <see cref="DefaultBackoff"/>.</summary>
    public IReadOnlyList<TimeSpan> Backoff { get; init; } = DefaultBackoff;

    /// <summary>A connection up this long resets the backoff. Default 10 s.</summary>
    public TimeSpan StableAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Refresh in-band this long before the credential expires, by the client's own clock, whether or not
    /// the hub warns first (<c>token_expired</c>). The expiry is read from a JWT access token's <c>exp</c>
    /// claim; API keys carry none and are never refreshed. For short-lived tokens the lead is at most a
    /// quarter of the token's lifetime. Zero turns the client's own timer off. Default 60 s.
    /// </summary>
    public TimeSpan RefreshBeforeExpiry { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Incoming messages buffered for the application; beyond this the newest are dropped and counted. Default 256.</summary>
    public int MessageBuffer { get; init; } = 256;
}
