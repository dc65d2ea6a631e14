using System.Text.Json;

namespace Parley.Hub.Auth;

/// <summary>Who is on a connection, as decided by the <see cref="IConnectAuthenticator"/>.</summary>
/// <param name="Name">The name shown as <c>from</c> on messages: a user name, or <c>anon-…</c> for anonymous connections.</param>
/// <param name="IsAuthenticated">False for anonymous connections.</param>
/// <param name="Roles">Roles granted (empty when anonymous).</param>
public sealed record ConnectionPrincipal(string Name, bool IsAuthenticated, IReadOnlyList<string> Roles)
{
    /// <summary>An anonymous principal named after the connection.</summary>
    public static ConnectionPrincipal Anonymous(string connectionId) => new($"anon-{connectionId}", false, []);

    /// <summary>True for hub admins and owners (who may override others' claims and the like).</summary>
    public bool IsAdmin => Roles.Contains("admin") || Roles.Contains("owner");

    /// <summary>False for read-only principals (guests, read-scoped keys): their pushes are refused with <c>forbidden</c>.</summary>
    public bool CanWrite { get; init; } = true;

    /// <summary>When the credential behind this connection expires (Unix ms), if it does.</summary>
    public long? ExpiresAtMs { get; init; }

    /// <summary>The API key behind this connection, if any (for revocation and logs; never the secret).</summary>
    public string? CredentialId { get; init; }

    /// <summary>Topics this connection may join (<c>*</c> wildcards), if restricted.</summary>
    public string? TopicPattern { get; init; }
}

/// <summary>What the transport knows about a connection attempt.</summary>
/// <param name="ConnectionId">The id the hub will give the connection.</param>
/// <param name="Token">The credential from the <c>token</c> query parameter or the Phoenix bearer subprotocol; null if none.</param>
/// <param name="RemoteAddress">The peer's address, for logs and policy.</param>
/// <param name="Params">Other query parameters (the Phoenix <c>params</c>), excluding the token.</param>
public sealed record ConnectRequest(string ConnectionId, string? Token, string? RemoteAddress, IReadOnlyDictionary<string, string> Params);

/// <summary>The decision on a connection attempt.</summary>
public readonly record struct ConnectResult(ConnectionPrincipal? Principal, string? RejectReason, bool Unauthenticated = false)
{
    public static ConnectResult Accept(ConnectionPrincipal principal) => new(principal, null);

    /// <summary>Refused for who it is (banned, revoked): HTTP 403.</summary>
    public static ConnectResult Reject(string reason) => new(null, reason);

    /// <summary>Refused for lack of a valid credential (missing, malformed, expired): HTTP 401.</summary>
    public static ConnectResult Unauthorized(string reason) => new(null, reason, Unauthenticated: true);

    public bool Accepted => Principal is not null;
}

/// <summary>
/// Decides who a socket belongs to, at the upgrade. A rejection becomes HTTP 401 or 403 before the
/// upgrade (phoenix.js then retries with backoff). <see cref="AnonymousConnectAuthenticator"/> accepts
/// everyone (only for hubs started with <c>--insecure-no-auth</c>); Parley.Identity checks tokens and keys.
/// </summary>
public interface IConnectAuthenticator
{
    ValueTask<ConnectResult> AuthenticateAsync(ConnectRequest request, CancellationToken cancellationToken);
}

/// <summary>Decides whether a principal may join a topic. A denial becomes a join error with the reason.</summary>
public interface IJoinAuthorizer
{
    /// <returns>null to allow; otherwise the error reason (e.g. <c>unauthorized</c>).</returns>
    ValueTask<string?> AuthorizeJoinAsync(ConnectionPrincipal principal, string topic, JsonElement joinParams, CancellationToken cancellationToken);
}

/// <summary>Accepts every connection as anonymous.</summary>
public sealed class AnonymousConnectAuthenticator : IConnectAuthenticator
{
    public ValueTask<ConnectResult> AuthenticateAsync(ConnectRequest request, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ConnectResult.Accept(ConnectionPrincipal.Anonymous(request.ConnectionId)));
}

/// <summary>Allows every join.</summary>
public sealed class AllowAllJoinAuthorizer : IJoinAuthorizer
{
    public ValueTask<string?> AuthorizeJoinAsync(ConnectionPrincipal principal, string topic, JsonElement joinParams, CancellationToken cancellationToken) =>
        ValueTask.FromResult<string?>(null);
}
