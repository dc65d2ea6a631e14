using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Parley.Hub;
using Parley.Hub.Auth;

namespace Parley.Server.Transport;

/// <summary>
/// <c>GET /socket/websocket?vsn=2.0.0</c>: validates the upgrade, authenticates (403 before the upgrade on
/// rejection), switches protocols and runs the connection (docs/protocol.md §Connecting).
/// </summary>
internal sealed class PhoenixSocketEndpoint(ParleyHub hub, ServerOptions options, ILoggerFactory loggerFactory)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("Parley.Server.Socket");

    public async Task HandleAsync(HttpContext context)
    {
        var upgradeFeature = context.Features.Get<IHttpUpgradeFeature>();
        if (upgradeFeature is null || !upgradeFeature.IsUpgradableRequest)
        {
            await RejectAsync(context, StatusCodes.Status426UpgradeRequired, "this endpoint speaks WebSocket only (HTTP/1.1 upgrade)");
            return;
        }
        if (!WebSocketHandshake.TryParse(context.Request, out var upgrade, out var status, out var error))
        {
            await RejectAsync(context, status, error);
            return;
        }
        var origin = context.Request.Headers.Origin.ToString();
        if (!WebSocketHandshake.IsOriginAllowed(origin, context.Request.Host.Value ?? "", options.AllowedOrigins))
        {
            ServerLog.ConnectRejected(_logger, context.Connection.RemoteIpAddress?.ToString(), $"origin {origin} not allowed");
            await RejectAsync(context, StatusCodes.Status403Forbidden, $"origin {origin} is not allowed: add it to allowed_origins (--allowed-origin) to let its pages connect");
            return;
        }
        if (hub.IsShuttingDown)
        {
            await RejectAsync(context, StatusCodes.Status503ServiceUnavailable, "server shutting down");
            return;
        }

        var connectionId = hub.NewConnectionId();
        var remote = context.Connection.RemoteIpAddress?.ToString();
        ConnectResult decision;
        try
        {
            decision = await hub.Authenticator.AuthenticateAsync(new ConnectRequest(connectionId, upgrade!.Token, remote, upgrade.Params), context.RequestAborted);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            ServerLog.ConnectionFailed(_logger, connectionId, ex);
            await RejectAsync(context, StatusCodes.Status500InternalServerError, "authentication failed inside the hub; try again");
            return;
        }
        if (!decision.Accepted)
        {
            ServerLog.ConnectRejected(_logger, remote, decision.RejectReason ?? "rejected");
            await RejectAsync(context, StatusCodes.Status403Forbidden, decision.RejectReason ?? "forbidden");
            return;
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = null; // frames are limited by the WebSocket reader instead
        }
        WebSocketHandshake.WriteAcceptHeaders(context.Response, upgrade);
        var stream = await upgradeFeature.UpgradeAsync();

        // Zero-byte reads: an idle connection holds no read buffer until data arrives.
        var input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true));
        var output = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true));
        var transport = new SocketConnection(context, input, output, hub, _logger);
        var connection = hub.Attach(connectionId, decision.Principal!, transport);
        ServerLog.Connected(_logger, connectionId, decision.Principal!.Name, remote);
        await transport.RunAsync(connection);
        ServerLog.Disconnected(_logger, connectionId);
    }

    private static async Task RejectAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsJsonAsync(new { error = message });
    }
}
