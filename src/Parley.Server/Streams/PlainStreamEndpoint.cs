using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Parley.Server.Transport;

namespace Parley.Server.Streams;

/// <summary>
/// Plain stream paths through the HTTP pipeline: an upgrade sent on an HTTP keep-alive connection (a fresh
/// connection's upgrade is taken by <see cref="SocketConnectionMiddleware"/> before HTTP parsing), and plain
/// requests (426). The same acceptor decides both ways, so authentication and refusals are identical.
/// </summary>
internal sealed class PlainStreamEndpoint(SocketAcceptor acceptor, PlainStreamRegistry registry)
{
    public async Task HandleAsync(HttpContext context)
    {
        if (!registry.TryMatch(context.Request.Path.Value ?? "", out var stream, out var subpath))
        {
            await RejectAsync(context, StatusCodes.Status404NotFound, "no stream at this path");
            return;
        }
        var upgradeFeature = context.Features.Get<IHttpUpgradeFeature>();
        if (upgradeFeature is null || !upgradeFeature.IsUpgradableRequest)
        {
            await RejectAsync(context, StatusCodes.Status426UpgradeRequired, "this endpoint speaks WebSocket only (HTTP/1.1 upgrade)");
            return;
        }
        var remote = context.Connection.RemoteIpAddress?.ToString();
        var decision = await acceptor.DecideAsync(context.Request.Method, context.Request.Query, context.Request.Headers, context.Request.Host.Value ?? "", remote, context.RequestAborted, plain: true);
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
        var upgraded = await upgradeFeature.UpgradeAsync();
        var input = PipeReader.Create(upgraded, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true));
        var output = PipeWriter.Create(upgraded, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true));
        var socket = new AcceptedSocket(decision.ConnectionId!, decision.Principal!, remote, null);
        await registry.RunAsync(socket, new PlainStreamTarget(stream!, subpath, decision.Upgrade!.Params), input, output, context.Abort);
    }

    private static async Task RejectAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsJsonAsync(new { error = message });
    }
}
