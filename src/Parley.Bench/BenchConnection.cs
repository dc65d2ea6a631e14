using System.Buffers;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using Parley.Bench.Protocols;
using Parley.Protocol;

namespace Parley.Bench;

/// <summary>
/// One bench WebSocket: connect and handshake, joins, an allocation-free receive loop that feeds the
/// protocol adapter, and counters read by the coordinator. Publishing lives in
/// <c>BenchConnection.Publish.cs</c>. A connection can be dropped and connected again (recovery); its
/// counters and recovery tracker carry over.
/// </summary>
internal sealed partial class BenchConnection : IFrameSink
{
    private const int InitialReceiveBytes = 4096;

    private readonly BenchContext _context;
    private readonly IBenchProtocol _protocol;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly List<JoinedChannel> _channels = [];
    private byte[] _sendBuffer;
    private ClientWebSocket? _socket;
    private Task _receiveLoop = Task.CompletedTask;
    private volatile bool _closing;
    private long _nextId;

    private long _joinId;
    private TaskCompletionSource<JoinReply>? _joinWaiter;
    private bool _pongNeeded;

    private long _deliveries;
    private long _replayed;

    public BenchConnection(BenchContext context, int index)
    {
        _context = context;
        _protocol = context.Protocol;
        Index = index;
        _sendBuffer = new byte[256];
    }

    /// <summary>Position in the run (used to stagger heartbeats).</summary>
    public int Index { get; }

    /// <summary>When true, <c>msg</c> deliveries are counted (subscribers; publishers drain theirs).</summary>
    public bool CountsDeliveries { get; init; }

    /// <summary>Publish→delivery latency, for the sampled subscribers; null otherwise.</summary>
    public LatencyHistogram? DeliveryLatency { get; init; }

    /// <summary>Offsets received, for recovery subscribers; null otherwise.</summary>
    public RecoveryTracker? Tracker { get; init; }

    /// <summary>Messages delivered to this subscriber (live and replayed).</summary>
    public long Deliveries => Volatile.Read(ref _deliveries);

    /// <summary>Deliveries that were recovery replays.</summary>
    public long Replayed => Volatile.Read(ref _replayed);

    /// <summary>True while the socket is open and its receive loop runs.</summary>
    public bool IsOpen => !_receiveLoop.IsCompleted;

    /// <summary>The channels joined on the current socket, in join order.</summary>
    public IReadOnlyList<JoinedChannel> Channels => _channels;

    /// <summary>Opens the socket, runs the protocol handshake and starts the receive loop.</summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        // Keep-alive is the protocol's job (heartbeats, pings), as in the real clients.
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        try
        {
            await socket.ConnectAsync(_context.SocketUri, _context.Http, cancellationToken);
            await _protocol.HandshakeAsync(socket, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        _channels.Clear();
        _closing = false;
        _socket = socket;
        _receiveLoop = ReceiveLoopAsync(socket);
    }

    /// <summary>Joins <paramref name="topic"/> and waits for the reply; a refusal throws <see cref="BenchRunException"/>.</summary>
    public async Task<JoinReply> JoinAsync(string topic, JoinPosition? since, CancellationToken cancellationToken)
    {
        var topicBytes = Encoding.UTF8.GetBytes(topic);
        var id = Interlocked.Increment(ref _nextId);
        var waiter = new TaskCompletionSource<JoinReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _joinId, id);
        Volatile.Write(ref _joinWaiter, waiter);
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            EnsureSendBuffer(topicBytes.Length + 200);
            var length = _protocol.WriteJoin(_sendBuffer, id, topicBytes, since);
            await Socket.SendAsync(_sendBuffer.AsMemory(0, length), WebSocketMessageType.Text, true, cancellationToken);
        }
        finally
        {
            _sendLock.Release();
        }
        JoinReply reply;
        try
        {
            reply = await waiter.Task.WaitAsync(_context.Options.Timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new BenchRunException($"no reply to the join of {topic} within {_context.Options.Timeout.TotalSeconds:0}s");
        }
        if (!reply.Ok)
        {
            var hint = reply.Error is not null && reply.Error.StartsWith(ErrorReasons.TooManyTopics, StringComparison.Ordinal)
                ? " (each socket may join a limited number of topics: use more --publishers or raise PARLEY_HUB__MAXTOPICSPERCONNECTION)"
                : reply.Error == ErrorReasons.RateLimited ? " (" + BenchContext.RateLimitHint + ")" : "";
            throw new BenchRunException($"join of {topic} refused: {reply.Error}{hint}");
        }
        _channels.Add(new JoinedChannel(topicBytes, id));
        return reply;
    }

    /// <summary>Sends the protocol heartbeat, if it has one.</summary>
    public Task HeartbeatAsync() => _protocol.Heartbeat.IsEmpty ? Task.CompletedTask : SendControlAsync(_protocol.Heartbeat);

    /// <summary>Drops the socket without a close handshake, as a network failure would.</summary>
    public async Task DropAsync()
    {
        _closing = true;
        StopPublishing();
        _socket?.Abort();
        await _receiveLoop;
        _socket?.Dispose();
    }

    /// <summary>Closes the socket with 1000 (bounded by <paramref name="timeout"/>), then releases it.</summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        _closing = true;
        StopPublishing();
        var socket = _socket;
        if (socket is null)
        {
            return;
        }
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _sendLock.WaitAsync(cts.Token);
            try
            {
                if (socket.State == WebSocketState.Open)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bench done", cts.Token);
                }
            }
            finally
            {
                _sendLock.Release();
            }
            await _receiveLoop.WaitAsync(cts.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
        }
        socket.Abort();
        await _receiveLoop;
        socket.Dispose();
    }

    private ClientWebSocket Socket => _socket ?? throw new InvalidOperationException("not connected");

    private async Task SendControlAsync(ReadOnlyMemory<byte> message)
    {
        var socket = _socket;
        if (socket is null || _closing)
        {
            return;
        }
        await _sendLock.WaitAsync();
        try
        {
            await socket.SendAsync(message, WebSocketMessageType.Text, true, CancellationToken.None);
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The receive loop reports the broken socket.
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private void EnsureSendBuffer(int bytes)
    {
        if (_sendBuffer.Length < bytes)
        {
            _sendBuffer = new byte[Math.Max(bytes, _sendBuffer.Length * 2)];
        }
    }

    /// <summary>
    /// Reads whole WebSocket messages into one pooled buffer (grown only for a bigger message) and hands
    /// each to the protocol adapter, which scans raw bytes: no allocation per message.
    /// </summary>
    private async Task ReceiveLoopAsync(ClientWebSocket socket)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(InitialReceiveBytes);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var result = await socket.ReceiveAsync(buffer.AsMemory(length), CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    if (!_closing)
                    {
                        _context.Errors.Add($"the server closed the connection: {(int?)socket.CloseStatus} {socket.CloseStatusDescription}".TrimEnd());
                    }
                    break;
                }
                length += result.Count;
                if (!result.EndOfMessage)
                {
                    continue;
                }
                if (result.MessageType == WebSocketMessageType.Text)
                {
                    _protocol.Parse(buffer.AsSpan(0, length), this);
                }
                length = 0;
                if (_pongNeeded)
                {
                    _pongNeeded = false;
                    await SendControlAsync(_protocol.Pong);
                }
                if (_pumpNeeded)
                {
                    _pumpNeeded = false;
                    await PumpAsync();
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or OperationCanceledException or IOException)
        {
            if (!_closing)
            {
                _context.Errors.Add($"connection lost: {ex.Message}");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _joinWaiter?.TrySetException(new BenchRunException("the connection closed before the join was answered"));
            StopPublishing();
        }
    }

    void IFrameSink.OnDelivery(long sentTimestamp, long offset, bool replay)
    {
        if (!CountsDeliveries)
        {
            return;
        }
        _deliveries++;
        if (replay)
        {
            _replayed++;
        }
        if (DeliveryLatency is { } histogram && sentTimestamp > 0)
        {
            histogram.Record(Elapsed.Micros(sentTimestamp, Stopwatch.GetTimestamp()));
        }
        if (offset >= 0)
        {
            Tracker?.Record(offset);
        }
    }

    void IFrameSink.OnReply(long id, bool ok, long offset, ReadOnlySpan<byte> record)
    {
        if (id == Volatile.Read(ref _joinId) && Volatile.Read(ref _joinWaiter) is { } waiter)
        {
            _joinWaiter = null;
            waiter.TrySetResult(_protocol.ParseJoinReply(ok, record));
            return;
        }
        OnPublishReply(id, ok, offset, record);
    }

    void IFrameSink.OnPing() => _pongNeeded = true;

    void IFrameSink.OnServerError(string message)
    {
        if (!_closing)
        {
            _context.Errors.Add(message);
        }
    }
}

/// <summary>A channel joined on a socket: its topic bytes and the join's id (Phoenix's join_ref).</summary>
internal sealed record JoinedChannel(byte[] Topic, long JoinId);

/// <summary>Stopwatch arithmetic.</summary>
internal static class Elapsed
{
    private static readonly double MicrosPerTick = 1_000_000.0 / Stopwatch.Frequency;

    public static long Micros(long start, long end) => (long)((end - start) * MicrosPerTick);

    public static double Seconds(long start, long end) => (end - start) / (double)Stopwatch.Frequency;
}
