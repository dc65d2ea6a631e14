using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

namespace Parley.Server.Transport;

/// <summary>
/// Kestrel connection middleware: when a fresh connection opens with <c>GET /socket/websocket</c> and
/// <c>Upgrade: websocket</c>, the hub answers the handshake itself and runs the socket straight on
/// Kestrel's transport pipes — no HttpContext, no stream wrappers, nothing held per idle connection but
/// the hub's own state. Every other connection (health, metrics, anything else) is handed, untouched,
/// to the HTTP pipeline. Upgrades to a registered plain stream path (<c>/ws/…</c>, <see cref="Streams.PlainStreamRegistry"/>)
/// are taken the same way and run as a <see cref="Streams.PlainStreamConnection"/>.
/// </summary>
internal sealed class SocketConnectionMiddleware(SocketAcceptor acceptor, Streams.PlainStreamRegistry plainStreams)
{
    /// <summary>Largest request head we look at; bigger heads go to the HTTP pipeline (which answers 431).</summary>
    private const int MaxHeadBytes = 16 * 1024;

    /// <summary>A connection must finish its request head within this time (Kestrel's own default).</summary>
    private static readonly TimeSpan HeadTimeout = TimeSpan.FromSeconds(30);

    private static ReadOnlySpan<byte> HeadEnd => "\r\n\r\n"u8;

    public ConnectionDelegate Wrap(ConnectionDelegate next) => connection => OnConnectionAsync(connection, next);

    private async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        // The handshake runs in its own method so that nothing it parsed (headers, query, key) stays
        // referenced by this long-lived state machine while the socket runs: idle memory per socket counts.
        var accepted = await HandshakeAsync(connection, next);
        if (accepted is { Plain: { } plain } stream)
        {
            await plainStreams.RunAsync(stream, plain, connection.Transport.Input, connection.Transport.Output,
                () => connection.Abort(new ConnectionAbortedException("close did not complete in time")));
        }
        else if (accepted is { } socket)
        {
            await acceptor.RunAsync(socket, connection.Transport.Input, connection.Transport.Output,
                () => connection.Abort(new ConnectionAbortedException("close did not complete in time")));
        }
    }

    /// <returns>The accepted socket, or null when the connection was handed to HTTP or rejected.</returns>
    private async Task<AcceptedSocket?> HandshakeAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        var input = connection.Transport.Input;
        RequestHead? head;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
        {
            timeout.CancelAfter(HeadTimeout);
            while (true)
            {
                ReadResult result;
                try
                {
                    result = await input.ReadAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    connection.Abort(new ConnectionAbortedException("request head timed out"));
                    return null;
                }
                var buffer = result.Buffer;
                var reader = new SequenceReader<byte>(buffer);
                var complete = reader.TryReadTo(out ReadOnlySequence<byte> headBytes, HeadEnd, advancePastDelimiter: true);
                if (!complete && !result.IsCompleted && buffer.Length < MaxHeadBytes)
                {
                    input.AdvanceTo(buffer.Start, buffer.End); // need more bytes
                    continue;
                }
                head = complete ? RequestHead.TryParseSocketUpgrade(headBytes, plainStreams) : null;
                if (head is null)
                {
                    // Not a socket upgrade: leave every byte for the HTTP pipeline (examined nothing, so it
                    // gets them on its first read).
                    input.AdvanceTo(buffer.Start);
                    await next(connection);
                    return null;
                }
                input.AdvanceTo(reader.Position);
                break;
            }
        }

        var remote = (connection.RemoteEndPoint as IPEndPoint)?.Address.ToString();
        var decision = await acceptor.DecideAsync("GET", head.Query, head.Headers, head.Headers.Host.ToString(), remote, connection.ConnectionClosed, plain: head.Plain is not null);
        var output = connection.Transport.Output;
        if (!decision.Accepted)
        {
            await WriteRejectionAsync(output, decision.Status, decision.Error!);
            await output.CompleteAsync();
            return null;
        }
        WriteSwitchingProtocols(output, decision.Upgrade!);
        await output.FlushAsync();
        var plain = head.Plain is { } match ? new Streams.PlainStreamTarget(match.Stream, match.Subpath, decision.Upgrade!.Params) : null;
        return new AcceptedSocket(decision.ConnectionId!, decision.Principal!, remote, decision.ClientKind, plain);
    }

    private static void WriteSwitchingProtocols(PipeWriter output, UpgradeRequest upgrade)
    {
        var response = new StringBuilder(160)
            .Append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
            .Append(Protocol.WebSocketFraming.ComputeAcceptKey(upgrade.Key))
            .Append("\r\n");
        if (upgrade.OffersPhoenixSubprotocol)
        {
            response.Append("Sec-WebSocket-Protocol: phoenix\r\n"); // browsers require the server to pick an offered one
        }
        response.Append("\r\n");
        output.Write(Encoding.ASCII.GetBytes(response.ToString()));
    }

    private static async Task WriteRejectionAsync(PipeWriter output, int status, string error)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["error"] = error });
        var head = $"HTTP/1.1 {status} {ReasonPhrases.GetReasonPhrase(status)}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
        output.Write(Encoding.ASCII.GetBytes(head));
        output.Write(body);
        await output.FlushAsync();
    }

    /// <summary>The request line and headers of a socket upgrade; <see cref="Plain"/> is set for a plain stream path.</summary>
    private sealed class RequestHead(IQueryCollection query, IHeaderDictionary headers, (Streams.IPlainStream Stream, string Subpath)? plain)
    {
        public IQueryCollection Query { get; } = query;
        public IHeaderDictionary Headers { get; } = headers;
        public (Streams.IPlainStream Stream, string Subpath)? Plain { get; } = plain;

        /// <summary>Returns the head when it is <c>GET /socket/websocket… HTTP/1.1</c> (or a registered plain stream path) with <c>Upgrade: websocket</c>; else null.</summary>
        public static RequestHead? TryParseSocketUpgrade(ReadOnlySequence<byte> bytes, Streams.PlainStreamRegistry plainStreams)
        {
            string text;
            try
            {
                text = Encoding.Latin1.GetString(bytes);
            }
            catch (ArgumentException)
            {
                return null;
            }
            var lines = text.Split("\r\n");
            var requestLine = lines[0].Split(' ');
            if (requestLine.Length != 3 || requestLine[0] != "GET" || requestLine[2] != "HTTP/1.1")
            {
                return null;
            }
            var target = requestLine[1];
            var question = target.IndexOf('?', StringComparison.Ordinal);
            var path = question < 0 ? target : target[..question];
            (Streams.IPlainStream, string)? plain = null;
            if (path.StartsWith(Streams.PlainStreamRegistry.PathPrefix, StringComparison.Ordinal))
            {
                if (!plainStreams.TryMatch(path, out var stream, out var subpath))
                {
                    return null; // an unknown stream path: the HTTP pipeline answers 404
                }
                plain = (stream!, subpath);
            }
            else if (path != SocketAcceptor.SocketPath && path != SocketAcceptor.SocketPath + "/")
            {
                return null;
            }
            IHeaderDictionary headers = new HeaderDictionary();
            for (var i = 1; i < lines.Length; i++)
            {
                var colon = lines[i].IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    continue;
                }
                var name = lines[i][..colon].Trim();
                var value = lines[i][(colon + 1)..].Trim();
                headers[name] = headers.TryGetValue(name, out var existing) ? StringValues.Concat(existing, value) : new StringValues(value);
            }
            if (!headers.Upgrade.ToString().Contains("websocket", StringComparison.OrdinalIgnoreCase))
            {
                return null; // a plain GET of the socket path: the HTTP endpoint explains (426)
            }
            var query = question < 0 ? new QueryCollection() : new QueryCollection(QueryHelpers.ParseQuery(target[question..]));
            return new RequestHead(query, headers, plain);
        }
    }
}
