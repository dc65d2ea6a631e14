using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Parley.Hub;
using Parley.Hub.Auth;
using Parley.Hub.Presence;

namespace Parley.Server.Transport;

/// <summary>The outcome of an upgrade request: a rejection (HTTP status and message) or an accepted socket.</summary>
internal readonly record struct AcceptDecision(int Status, string? Error, UpgradeRequest? Upgrade, string? ConnectionId, ConnectionPrincipal? Principal, string? ClientKind = null)
{
    public bool Accepted => Principal is not null;
    public static AcceptDecision Reject(int status, string error) => new(status, error, null, null, null);
}

/// <summary>What a running socket keeps of its handshake: who it is and what kind of client (presence); for a plain stream, which one.</summary>
internal sealed record AcceptedSocket(string ConnectionId, ConnectionPrincipal Principal, string? Remote, string? ClientKind, Streams.PlainStreamTarget? Plain = null);

/// <summary>
/// The one place that decides whether an upgrade to <c>/socket/websocket</c> becomes a socket
/// (vsn, key, origin, shutdown, authentication; docs/protocol.md §Connecting) and that runs the accepted
/// socket. Both entry points use it: the connection middleware on Kestrel's raw pipes (the usual path)
/// and the HTTP endpoint (an upgrade that arrives on a keep-alive HTTP connection).
/// </summary>
internal sealed class SocketAcceptor(ParleyHub hub, ServerOptions options, ILoggerFactory loggerFactory)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("Parley.Server.Socket");

    /// <summary>The path clients connect to (phoenix.js appends <c>/websocket</c> to the endpoint).</summary>
    public const string SocketPath = "/socket/websocket";

    /// <param name="plain">True for a plain stream (<c>/ws/…</c>): no <c>vsn</c> or presence <c>client</c>, and the token may come as <c>Authorization: Bearer</c>.</param>
    public async Task<AcceptDecision> DecideAsync(string method, IQueryCollection query, IHeaderDictionary headers, string host, string? remote, CancellationToken cancellationToken, bool plain = false)
    {
        if (!WebSocketHandshake.TryParse(method, query, headers, out var upgrade, out var status, out var error, phoenix: !plain))
        {
            return AcceptDecision.Reject(status, error);
        }
        var origin = headers.Origin.ToString();
        if (!WebSocketHandshake.IsOriginAllowed(origin, host, options.AllowedOrigins))
        {
            ServerLog.ConnectRejected(_logger, remote, $"origin {origin} not allowed");
            return AcceptDecision.Reject(StatusCodes.Status403Forbidden, $"origin {origin} is not allowed: add it to allowed_origins (--allowed-origin) to let its pages connect");
        }
        if (hub.IsShuttingDown)
        {
            return AcceptDecision.Reject(StatusCodes.Status503ServiceUnavailable, "server shutting down");
        }
        // The presence client kind: a connect param, else web for browsers (they always send Origin).
        string? clientKind;
        if (plain)
        {
            clientKind = null;
        }
        else if (upgrade!.Params.TryGetValue("client", out var declared))
        {
            clientKind = PresenceValues.ParseClient(declared);
            if (clientKind is null)
            {
                return AcceptDecision.Reject(StatusCodes.Status400BadRequest, $"client must be one of {string.Join(", ", PresenceValues.Clients)}");
            }
        }
        else
        {
            clientKind = origin.Length > 0 ? PresenceValues.DefaultBrowserClient : PresenceValues.DefaultClient;
        }
        var connectionId = hub.NewConnectionId();
        ConnectResult result;
        try
        {
            result = await hub.Authenticator.AuthenticateAsync(new ConnectRequest(connectionId, upgrade!.Token, remote, upgrade.Params), cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            ServerLog.ConnectionFailed(_logger, connectionId, ex);
            return AcceptDecision.Reject(StatusCodes.Status500InternalServerError, "authentication failed inside the hub; try again");
        }
        if (!result.Accepted)
        {
            ServerLog.ConnectRejected(_logger, remote, result.RejectReason ?? "rejected");
            return AcceptDecision.Reject(result.Unauthenticated ? StatusCodes.Status401Unauthorized : StatusCodes.Status403Forbidden, result.RejectReason ?? "forbidden");
        }
        return new AcceptDecision(StatusCodes.Status101SwitchingProtocols, null, upgrade, connectionId, result.Principal, clientKind);
    }

    /// <summary>Runs an accepted socket over its pipes until it ends.</summary>
    public Task RunAsync(AcceptedSocket socket, PipeReader input, PipeWriter output, Action abortTransport)
    {
        // Not async: one state machine fewer kept alive per socket.
        var transport = new SocketConnection(socket.ConnectionId, input, output, abortTransport, hub, _logger);
        var connection = hub.Attach(socket.ConnectionId, socket.Principal, transport, socket.ClientKind);
        ServerLog.Connected(_logger, socket.ConnectionId, socket.Principal.Name, socket.Remote);
        return transport.RunAsync(connection);
    }
}
