using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Parley.Server.Transport;

/// <summary>
/// <c>GET /socket/websocket</c> through the HTTP pipeline. Most sockets never get here: the
/// connection middleware takes upgrades on fresh connections straight off Kestrel's pipes. This
/// endpoint serves an upgrade sent on an HTTP keep-alive connection, and answers plain requests (426).
/// </summary>
internal sealed class PhoenixSocketEndpoint(SocketAcceptor acceptor)
{
    public async Task HandleAsync(HttpContext context)
    {
        var upgradeFeature = context.Features.Get<IHttpUpgradeFeature>();
        if (upgradeFeature is null || !upgradeFeature.IsUpgradableRequest)
        {
            await RejectAsync(context, StatusCodes.Status426UpgradeRequired, "this endpoint speaks WebSocket only (HTTP/1.1 upgrade)");
            return;
        }
        var remote = context.Connection.RemoteIpAddress?.ToString();
        var decision = await acceptor.DecideAsync(context.Request.Method, context.Request.Query, context.Request.Headers, context.Request.Host.Value ?? "", remote, context.RequestAborted);
        if (!decision.Accepted)
        {
            await RejectAsync(context, decision.Status, decision.Error!);
            return;
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = null; // frames are limited by the WebSocket reader instead
        }
        WebSocketHandshake.WriteAcceptHeaders(context.Response, decision.Upgrade!);
        var stream = await upgradeFeature.UpgradeAsync();
        // Zero-byte reads: an idle connection holds no read buffer until data arrives.
        var input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true));
        var output = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true));
        await acceptor.RunAsync(new AcceptedSocket(decision.ConnectionId!, decision.Principal!, remote, decision.ClientKind), input, output, context.Abort);
    }

    private static async Task RejectAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsJsonAsync(new { error = message });
    }
}
