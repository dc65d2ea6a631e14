using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Parley.Hub.Auth;
using Parley.Protocol;

namespace Parley.Server.Streams;

/// <summary>
/// One plain JSON WebSocket stream over an upgraded Kestrel connection, framed with the hub's one RFC 6455
/// implementation (<see cref="WebSocketMessageReader"/>, <see cref="WebSocketFraming"/>). Sources only
/// enqueue (never wait); one write loop drains the queue. A consumer whose queue holds more than
/// <see cref="PlainStreamOptions.MaxQueuedFrames"/> deltas has fallen behind: those deltas are dropped, later
/// ones ignored, and once the writer has caught up the session sends a fresh snapshot (counted in
/// <c>parley_plain_stream_resyncs_total</c>). It is never closed for being slow.
/// </summary>
internal sealed class PlainStreamConnection
{
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(2);

    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly Action _abortTransport;
    private readonly PlainStreamRegistry _registry;
    private readonly PlainStreamOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private List<byte[]> _pending = [];
    private int _pendingDeltas;
    private TaskCompletionSource? _wake;
    private bool _lagging;
    private bool _closing;
    private byte[]? _closeFrame;
    private Timer? _abortTimer;
    private Timer? _idleTimer;
    private long _lastInboundTicks = Environment.TickCount64;
    private volatile bool _ended;
    private IPlainStreamSession? _session;

    public PlainStreamConnection(string id, ConnectionPrincipal principal, IReadOnlyDictionary<string, string> parameters, string subpath,
        PipeReader input, PipeWriter output, Action abortTransport, PlainStreamRegistry registry, PlainStreamOptions options, ILogger logger)
    {
        Id = id;
        Principal = principal;
        Params = parameters;
        Subpath = subpath;
        _input = input;
        _output = output;
        _abortTransport = abortTransport;
        _registry = registry;
        _options = options;
        _logger = logger;
    }

    /// <summary>The hub's id of this connection (for logs).</summary>
    public string Id { get; }

    /// <summary>Who is watching, as decided by the hub's authenticator at the upgrade.</summary>
    public ConnectionPrincipal Principal { get; }

    /// <summary>The query parameters of the upgrade, without <c>token</c>.</summary>
    public IReadOnlyDictionary<string, string> Params { get; }

    /// <summary>For a stream registered on a prefix (a path ending in <c>/</c>): the rest of the path; otherwise empty.</summary>
    public string Subpath { get; }

    /// <summary>True once a close has started.</summary>
    public bool IsClosing
    {
        get
        {
            lock (_lock)
            {
                return _closing;
            }
        }
    }

    /// <summary>Queues a delta frame (see <see cref="PlainFrames"/>). Never waits; a consumer that fell behind gets a re-snapshot instead.</summary>
    public void SendDelta(byte[] frame)
    {
        lock (_lock)
        {
            if (_closing || _lagging)
            {
                return;
            }
            if (_pendingDeltas >= _options.MaxQueuedFrames)
            {
                _pending.Clear();
                _pendingDeltas = 0;
                _lagging = true;
                _registry.CountResync();
                StreamLog.Resync(_logger, Id, _options.MaxQueuedFrames);
            }
            else
            {
                _pending.Add(frame);
                _pendingDeltas++;
            }
            WakeLocked();
        }
    }

    /// <summary>Queues a snapshot frame; it ends a lag, so deltas queued after it are sent again.</summary>
    public void SendSnapshot(byte[] frame)
    {
        lock (_lock)
        {
            if (_closing)
            {
                return;
            }
            _lagging = false;
            _pending.Add(frame);
            WakeLocked();
        }
    }

    /// <summary>Queues a frame that is not a delta (a pong, a reply); it never counts towards falling behind.</summary>
    public void SendFrame(byte[] frame)
    {
        lock (_lock)
        {
            if (!_closing)
            {
                _pending.Add(frame);
                WakeLocked();
            }
        }
    }

    /// <summary>Sends <c>{"type":"error","code":…,"message":…}</c> and closes with 4000 + <paramref name="httpStatus"/>.</summary>
    public void Fail(int httpStatus, string code, string message)
    {
        SendFrame(PlainFrames.Error(code, message));
        Close(StreamCloseStatus.ForHttpStatus(httpStatus), message);
    }

    /// <summary>Closes after what is already queued (the close frame goes last); the connection is torn down if the peer has not closed within 2 s.</summary>
    public void Close(ushort code, string reason)
    {
        lock (_lock)
        {
            if (_closing)
            {
                return;
            }
            _closing = true;
            _closeFrame = WebSocketFraming.EncodeClose(code, reason);
            WakeLocked();
        }
        StreamLog.Closing(_logger, Id, code, reason);
        ArmAbort();
    }

    private void WakeLocked()
    {
        var wake = _wake;
        _wake = null;
        wake?.TrySetResult();
    }

    /// <summary>Opens <paramref name="stream"/> on this connection and runs it until both directions are done.</summary>
    public async Task RunAsync(IPlainStream stream)
    {
        var writer = WriteLoopAsync();
        try
        {
            if (await OpenAsync(stream))
            {
                // Checks silence and credential expiry; the first check at once re-arms it for whichever comes first.
                _idleTimer = new Timer(static s => ((PlainStreamConnection)s!).CheckIdle(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _idleTimer.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan); // armed only once assigned: the callback re-arms it
            }
            await ReadLoopAsync();
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException)
        {
            // the peer went away or the connection was aborted
        }
        catch (Exception ex)
        {
            StreamLog.Failed(_logger, Id, ex);
            Fail(500, StreamErrorCodes.InternalError, "internal error");
        }
        finally
        {
            lock (_lock)
            {
                _closing = true;
                WakeLocked();
            }
            ArmAbort();
            try
            {
                await writer;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException or InvalidOperationException)
            {
            }
            finally
            {
                _session?.Dispose();
                _registry.Untrack(this);
                await _input.CompleteAsync();
                await _output.CompleteAsync();
                _ended = true;
                if (Interlocked.Exchange(ref _abortTimer, null) is { } abort)
                {
                    await abort.DisposeAsync();
                }
                if (_idleTimer is { } idleTimer)
                {
                    await idleTimer.DisposeAsync();
                }
                StreamLog.Ended(_logger, Id);
            }
        }
    }

    private async Task<bool> OpenAsync(IPlainStream stream)
    {
        try
        {
            _session = await stream.OpenAsync(this, CancellationToken.None);
            _session.Start();
            return true;
        }
        catch (PlainStreamException ex)
        {
            Fail(ex.HttpStatus, ex.Code, ex.Message);
            return false;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            StreamLog.Failed(_logger, Id, ex);
            Fail(500, StreamErrorCodes.InternalError, "the stream could not be opened");
            return false;
        }
    }

    private void CheckIdle()
    {
        if (_ended || IsClosing)
        {
            return;
        }
        var silent = TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastInboundTicks));
        if (silent >= _options.IdleTimeout)
        {
            _registry.CountIdleClose();
            Close(CloseStatus.GoingAway, "idle timeout");
            return;
        }
        var next = _options.IdleTimeout - silent;
        if (Principal.ExpiresAtMs is { } expiresAtMs)
        {
            // The credential runs out while streaming: 4401, like the Phoenix socket (reconnect with a fresh token).
            var left = TimeSpan.FromMilliseconds(expiresAtMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            if (left <= TimeSpan.Zero)
            {
                Fail(401, "token_expired", "the credential expired: reconnect with a fresh one");
                return;
            }
            next = left < next ? left : next;
        }
        try
        {
            _idleTimer?.Change(next, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void ArmAbort()
    {
        if (_ended || Volatile.Read(ref _abortTimer) is not null)
        {
            return;
        }
        var timer = new Timer(static s => ((PlainStreamConnection)s!).AbortNow(), this, Timeout.Infinite, Timeout.Infinite);
        if (Interlocked.CompareExchange(ref _abortTimer, timer, null) is not null)
        {
            timer.Dispose();
            return;
        }
        timer.Change(CloseGrace, Timeout.InfiniteTimeSpan);
    }

    private void AbortNow()
    {
        if (!_ended)
        {
            _abortTransport();
        }
    }

    private async Task ReadLoopAsync()
    {
        var reader = new WebSocketMessageReader(_options.MaxClientFrameBytes);
        var framingBroken = false;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync();
                if (result.IsCanceled)
                {
                    return;
                }
                var buffer = result.Buffer;
                try
                {
                    while (!framingBroken)
                    {
                        var status = reader.TryRead(ref buffer);
                        if (status == WebSocketReadStatus.NeedMoreData)
                        {
                            break;
                        }
                        if (status == WebSocketReadStatus.Error)
                        {
                            Close(reader.ErrorCode, reader.ErrorReason);
                            framingBroken = true;
                            break;
                        }
                        if (IsClosing)
                        {
                            // Our close is out or on its way: ignore all but the peer's close, so it sees our code.
                            if (reader.Opcode == WebSocketOpcode.Close)
                            {
                                return;
                            }
                            continue;
                        }
                        Volatile.Write(ref _lastInboundTicks, Environment.TickCount64);
                        if (!await HandleFrameAsync(reader))
                        {
                            return;
                        }
                    }
                    if (framingBroken)
                    {
                        buffer = buffer.Slice(buffer.End);
                    }
                }
                finally
                {
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
        finally
        {
            reader.ReleaseBuffer();
        }
    }

    /// <returns>false when the connection should stop reading.</returns>
    private async ValueTask<bool> HandleFrameAsync(WebSocketMessageReader reader)
    {
        switch (reader.Opcode)
        {
            case WebSocketOpcode.Text:
                await HandleClientFrameAsync(reader.PayloadMemory);
                return true;
            case WebSocketOpcode.Binary:
                Close(CloseStatus.PolicyViolation, "frames are JSON text");
                return true;
            case WebSocketOpcode.Ping:
                SendFrame(WebSocketFraming.EncodeFrame(WebSocketOpcode.Pong, reader.Payload));
                return true;
            case WebSocketOpcode.Pong:
                return true;
            case WebSocketOpcode.Close:
            {
                if (!WebSocketFraming.TryParseClosePayload(reader.Payload, out var code, out _))
                {
                    Close(reader.Payload.Length == 1 ? CloseStatus.ProtocolError : CloseStatus.InvalidPayload, "malformed close frame");
                    return false;
                }
                Close(code == 1005 ? CloseStatus.Normal : IsValidPeerCloseCode(code) ? code : CloseStatus.ProtocolError, "");
                return false;
            }
            default:
                Close(CloseStatus.ProtocolError, "unexpected opcode");
                return false;
        }
    }

    private async ValueTask HandleClientFrameAsync(ReadOnlyMemory<byte> payload)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(payload, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException)
        {
            Close(CloseStatus.PolicyViolation, "frames are JSON objects with a type");
            return;
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type"u8, out var typeElement) || typeElement.ValueKind != JsonValueKind.String)
            {
                Close(CloseStatus.PolicyViolation, "frames are JSON objects with a type");
                return;
            }
            var type = typeElement.GetString()!;
            if (type == "ping")
            {
                SendFrame(PlainFrames.Pong);
                return;
            }
            if (_session is null || !await _session.OnClientFrameAsync(type, root, CancellationToken.None))
            {
                Close(CloseStatus.PolicyViolation, $"unknown frame type '{(type.Length > 32 ? type[..32] : type)}'");
            }
        }
    }

    private static bool IsValidPeerCloseCode(ushort code) =>
        code is (>= 1000 and <= 1003) or (>= 1007 and <= 1014) or (>= 3000 and <= 4999);

    private async Task WriteLoopAsync()
    {
        while (true)
        {
            List<byte[]>? batch = null;
            var resync = false;
            Task? wait = null;
            lock (_lock)
            {
                if (_pending.Count > 0)
                {
                    batch = _pending;
                    _pending = [];
                    _pendingDeltas = 0;
                }
                else if (_closing)
                {
                    break;
                }
                else if (_lagging)
                {
                    resync = true;
                }
                else
                {
                    _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    wait = _wake.Task;
                }
            }
            if (wait is not null)
            {
                await wait;
                continue;
            }
            if (resync)
            {
                Resync();
                continue;
            }
            long written = 0;
            foreach (var frame in batch!)
            {
                _output.Write(frame);
                written += frame.Length;
            }
            await _output.FlushAsync();
            _registry.CountSent(written);
        }
        byte[]? close;
        lock (_lock)
        {
            close = _closeFrame;
        }
        if (close is not null)
        {
            _output.Write(close);
            await _output.FlushAsync();
        }
    }

    // The writer has caught up after a lag: the session sends a snapshot under its source's ordering.
    private void Resync()
    {
        try
        {
            _session!.Resync();
        }
        catch (Exception ex)
        {
            StreamLog.Failed(_logger, Id, ex);
            Fail(500, StreamErrorCodes.InternalError, "the stream could not be resynchronized");
            return;
        }
        bool stuck;
        lock (_lock)
        {
            stuck = _lagging && !_closing;
            _lagging = false;
        }
        if (stuck)
        {
            Fail(500, StreamErrorCodes.InternalError, "the stream could not be resynchronized"); // a session that sent no snapshot: end rather than spin
        }
    }
}
