using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Parley.Hub;
using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Server.Transport;

/// <summary>
/// RFC 6455 over an upgraded Kestrel connection, hand-framed: reads client frames from the request
/// pipe, and writes pre-encoded frames from a bounded per-connection queue into the response pipe,
/// coalescing everything queued into one flush. A broadcast only enqueues; a full queue closes this
/// connection alone with 4008 "slow consumer".
/// </summary>
internal sealed class SocketConnection : IConnectionTransport
{
    private const int CoalesceBytes = 32 * 1024;
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(2);

    private readonly Action _abortTransport;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly ParleyHub _hub;
    private readonly ILogger _logger;
    // Items are byte[] (one frame) or FrameBatch (several frames queued as one unit).
    private readonly OutboundQueue _queue = new();
    private readonly int _maxQueuedBytes;
    // Created only when the connection starts closing (idle memory per socket counts): tears the
    // transport down if the close has not completed after CloseGrace.
    private Timer? _abortTimer;
    private volatile bool _ended;
    private long _queuedBytes;
    private int _closing;
    private volatile bool _discardQueued;
    private byte[]? _closeFrame;
    private TaskCompletionSource? _roomAvailable;
    private readonly string _connectionId;

    /// <param name="connectionId">The transport's connection id, for logs.</param>
    /// <param name="input">Bytes from the client (after the HTTP upgrade).</param>
    /// <param name="output">Bytes to the client.</param>
    /// <param name="abortTransport">Tears the underlying connection down (used when a close does not complete in time).</param>
    public SocketConnection(string connectionId, PipeReader input, PipeWriter output, Action abortTransport, ParleyHub hub, ILogger logger)
    {
        _connectionId = connectionId;
        _input = input;
        _output = output;
        _abortTransport = abortTransport;
        _hub = hub;
        _logger = logger;
        _maxQueuedBytes = hub.Options.MaxOutboundQueueBytes;
    }

    public bool IsClosing => Volatile.Read(ref _closing) != 0;

    public long QueuedBytes => Volatile.Read(ref _queuedBytes);

    public bool TrySend(byte[] frame) => TryEnqueue(frame, frame.Length);

    public bool TrySend(FrameBatch batch) => TryEnqueue(batch, batch.TotalBytes);

    private bool TryEnqueue(object item, int bytes)
    {
        if (IsClosing)
        {
            return false;
        }
        if (Interlocked.Add(ref _queuedBytes, bytes) > _maxQueuedBytes)
        {
            Interlocked.Add(ref _queuedBytes, -bytes);
            _hub.Metrics.SlowConsumer();
            ServerLog.SlowConsumer(_logger, _connectionId, _maxQueuedBytes);
            _discardQueued = true;
            Close(CloseStatus.SlowConsumer, "slow consumer");
            return false;
        }
        return _queue.TryEnqueue(item);
    }

    public async ValueTask<bool> SendAsync(byte[] frame, CancellationToken cancellationToken)
    {
        // Replays wait for the writer to drain below half the limit, so they never trip the slow-consumer close.
        while (Volatile.Read(ref _queuedBytes) > _maxQueuedBytes / 2 && !IsClosing)
        {
            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _roomAvailable, waiter);
            if (Volatile.Read(ref _queuedBytes) <= _maxQueuedBytes / 2)
            {
                break;
            }
            try
            {
                await waiter.Task.WaitAsync(TimeSpan.FromMilliseconds(100), cancellationToken);
            }
            catch (TimeoutException)
            {
            }
        }
        return TrySend(frame);
    }

    public void Close(ushort code, string reason)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
        {
            return;
        }
        _closeFrame = WebSocketFraming.EncodeClose(code, reason);
        // A peer that never reads would hold the writer forever; abort after a grace period.
        ArmAbort();
        _queue.Complete();
        ServerLog.Closing(_logger, _connectionId, code, reason);
    }

    /// <summary>Aborts the connection after <see cref="CloseGrace"/> unless it ended by then. Safe at any time.</summary>
    private void ArmAbort()
    {
        if (_ended || Volatile.Read(ref _abortTimer) is not null)
        {
            return;
        }
        var timer = new Timer(static state => ((SocketConnection)state!).AbortNow(), this, Timeout.Infinite, Timeout.Infinite);
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
            _abortTransport(); // ends both loops: the pipes complete with an abort
        }
    }

    /// <summary>Runs the connection until both directions are done.</summary>
    public async Task RunAsync(HubConnection connection)
    {
        var writer = WriteLoopAsync(); // runs until its first wait, then on whichever thread wakes it
        try
        {
            await ReadLoopAsync(connection);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException)
        {
            // the peer went away or the connection was aborted
        }
        catch (Exception ex)
        {
            ServerLog.ConnectionFailed(_logger, _connectionId, ex);
            Close(CloseStatus.InternalError, "internal error");
        }
        finally
        {
            // The peer is gone or closing: end the writer too (no close frame is owed to a vanished peer).
            if (Interlocked.Exchange(ref _closing, 1) == 0)
            {
                ArmAbort();
                _queue.Complete();
            }
            try
            {
                await writer;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException or InvalidOperationException)
            {
            }
            catch (Exception ex)
            {
                ServerLog.ConnectionFailed(_logger, _connectionId, ex);
            }
            finally
            {
                connection.OnTransportClosed();
                ServerLog.Disconnected(_logger, _connectionId);
                await _input.CompleteAsync();
                await _output.CompleteAsync();
                _ended = true;
                if (Interlocked.Exchange(ref _abortTimer, null) is { } timer)
                {
                    await timer.DisposeAsync();
                }
            }
        }
    }

    private async Task ReadLoopAsync(HubConnection connection)
    {
        var reader = new WebSocketMessageReader(_hub.Options.MaxFrameBytes);
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
                var startLength = buffer.Length;
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
                            if (!IsClosing)
                            {
                                _hub.Metrics.ProtocolErrorClose();
                                Close(reader.ErrorCode, reader.ErrorReason);
                            }
                            framingBroken = true; // nothing after this can be parsed: discard until the peer hangs up
                            break;
                        }
                        if (IsClosing)
                        {
                            // Our close frame is out or on its way: read (and ignore) until the peer's close,
                            // so the peer is not reset with unread data and actually sees our close code.
                            if (reader.Opcode == WebSocketOpcode.Close)
                            {
                                return;
                            }
                            continue;
                        }
                        connection.Touch();
                        if (!await HandleMessageAsync(connection, reader))
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
                    _hub.Metrics.ReceivedBytes(startLength - buffer.Length);
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
    private async ValueTask<bool> HandleMessageAsync(HubConnection connection, WebSocketMessageReader reader)
    {
        switch (reader.Opcode)
        {
            case WebSocketOpcode.Text or WebSocketOpcode.Binary:
            {
                if (!TryParse(reader, out var message, out var error))
                {
                    _hub.Metrics.ProtocolErrorClose();
                    Close(CloseStatus.InvalidPayload, error);
                    return true; // keep reading until the peer answers our close
                }
                using (message)
                {
                    await connection.HandleAsync(message!, CancellationToken.None);
                }
                return true;
            }
            case WebSocketOpcode.Ping:
                TrySend(WebSocketFraming.EncodeFrame(WebSocketOpcode.Pong, reader.Payload));
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
                // Echo the peer's close (RFC 6455 §5.5.1): no code → 1000; codes a peer may not send → 1002.
                Close(code == 1005 ? CloseStatus.Normal : IsValidPeerCloseCode(code) ? code : CloseStatus.ProtocolError, "");
                return false;
            }
            default:
                Close(CloseStatus.ProtocolError, "unexpected opcode");
                return false;
        }
    }

    private static bool IsValidPeerCloseCode(ushort code) =>
        code is (>= 1000 and <= 1003) or (>= 1007 and <= 1014) or (>= 3000 and <= 4999);

    private static bool TryParse(WebSocketMessageReader reader, out PhoenixMessage? message, out string error)
    {
        if (reader.Opcode == WebSocketOpcode.Binary)
        {
            return PhoenixBinaryCodec.TryParsePush(reader.Payload, out message, out error);
        }
        if (!System.Text.Unicode.Utf8.IsValid(reader.Payload))
        {
            message = null;
            error = "text frame is not valid UTF-8";
            return false;
        }
        return PhoenixJsonCodec.TryParse(reader.PayloadMemory, out message, out error);
    }

    private async Task WriteLoopAsync()
    {
        var token = CancellationToken.None; // an abort completes the pipe, which ends any pending flush
        while (await _queue.WaitAsync())
        {
            var items = _queue.TakeAll();
            if (items is null)
            {
                continue;
            }
            long written = 0;
            long unflushed = 0;
            foreach (var item in items)
            {
                var bytes = item is FrameBatch batch ? batch.TotalBytes : ((byte[])item).Length;
                var remaining = Interlocked.Add(ref _queuedBytes, -bytes);
                if (remaining <= _maxQueuedBytes / 2)
                {
                    Volatile.Read(ref _roomAvailable)?.TrySetResult();
                }
                if (_discardQueued)
                {
                    continue;
                }
                if (item is FrameBatch frames)
                {
                    foreach (var frame in frames.Frames)
                    {
                        _output.Write(frame);
                    }
                }
                else
                {
                    _output.Write((byte[])item);
                }
                written += bytes;
                unflushed += bytes;
                if (unflushed >= CoalesceBytes)
                {
                    await _output.FlushAsync(token);
                    unflushed = 0;
                }
            }
            _queue.Recycle(items);
            if (written > 0)
            {
                await _output.FlushAsync(token);
                _hub.Metrics.SentBytes(written);
            }
        }
        if (_closeFrame is { } close)
        {
            _output.Write(close);
            await _output.FlushAsync(token);
            _hub.Metrics.SentBytes(close.Length);
        }
    }
}
