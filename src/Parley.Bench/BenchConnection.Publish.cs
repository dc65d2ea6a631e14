using System.Diagnostics;
using System.Net.WebSockets;
using Parley.Protocol;

namespace Parley.Bench;

/// <summary>
/// Publishing: keep <see cref="BenchOptions.Window"/> pushes in flight, correlate each reply with its push
/// by id (a ring of send timestamps, no dictionary), and send the next push as soon as a reply frees a
/// slot — from the receive loop, so no extra hop per message. With a rate, a shared pacer tops up.
/// </summary>
internal sealed partial class BenchConnection
{
    private const int RingSize = 8192;   // > the largest window, so a slot is free again long before its id comes round
    private const int RingMask = RingSize - 1;

    private long[]? _ringIds;
    private long[]? _ringSent;
    private int _window;
    private int _size;
    private long _interval;               // Stopwatch ticks between pushes; 0 = unlimited
    private long _nextSendAt;
    private volatile bool _publishing;
    private bool _pumpNeeded;
    private int _inFlight;
    private int _cursor;
    private long _sent;
    private long _acked;
    private long _maxAckedOffset = -1;
    private long _pausedUntil;

    /// <summary>Push→reply latency of this publisher (all publishers record it).</summary>
    public LatencyHistogram AckLatency { get; } = new();

    /// <summary>Pushes acknowledged ok.</summary>
    public long Acked => Volatile.Read(ref _acked);

    /// <summary>Pushes sent.</summary>
    public long Sent => Volatile.Read(ref _sent);

    /// <summary>Pushes sent and not yet answered.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The highest offset acknowledged (parley), or -1.</summary>
    public long MaxAckedOffset => Volatile.Read(ref _maxAckedOffset);

    /// <summary>True while this connection publishes.</summary>
    public bool IsPublishing => _publishing;

    /// <summary>
    /// Starts publishing to the joined channels in turn, keeping <paramref name="window"/> pushes in flight,
    /// at most <paramref name="rate"/> per second (0: unlimited).
    /// </summary>
    public Task StartPublishingAsync(int window, int size, double rate)
    {
        if (_channels.Count == 0)
        {
            throw new InvalidOperationException("a publisher must join a channel first");
        }
        _ringIds ??= new long[RingSize];
        _ringSent ??= new long[RingSize];
        _window = Math.Min(window, RingSize / 2);
        _size = size;
        var longestTopic = _channels.Max(static c => c.Topic.Length);
        EnsureSendBuffer(size + _protocol.Overhead(longestTopic));
        _interval = rate > 0 ? Math.Max(1, (long)(Stopwatch.Frequency / rate)) : 0;
        _nextSendAt = Stopwatch.GetTimestamp();
        _publishing = true;
        return PumpAsync().AsTask();
    }

    /// <summary>Stops sending new pushes; replies to those in flight are still counted.</summary>
    public void StopPublishing() => _publishing = false;

    /// <summary>Sends pushes while the window, the rate and any rate-limit pause allow. Safe to call from any thread.</summary>
    public async ValueTask PumpAsync()
    {
        if (!_publishing || _socket is not { } socket)
        {
            return;
        }
        await _sendLock.WaitAsync();
        try
        {
            while (_publishing && Volatile.Read(ref _inFlight) < _window && Allowed())
            {
                var id = Interlocked.Increment(ref _nextId);
                var channel = _channels[_cursor];
                _cursor = _cursor + 1 == _channels.Count ? 0 : _cursor + 1;
                var now = Stopwatch.GetTimestamp();
                var length = _protocol.WritePublish(_sendBuffer, id, channel.Topic, channel.JoinId, _size, now);
                var slot = (int)(id & RingMask);
                _ringSent![slot] = now;
                Volatile.Write(ref _ringIds![slot], id);
                Interlocked.Increment(ref _inFlight);
                Paced(now);
                _sent++;
                await socket.SendAsync(_sendBuffer.AsMemory(0, length), WebSocketMessageType.Text, true, CancellationToken.None);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or OperationCanceledException or IOException)
        {
            _publishing = false;
            if (!_closing)
            {
                _context.Errors.Add($"publish failed: {ex.Message}");
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private bool Allowed()
    {
        var now = Stopwatch.GetTimestamp();
        if (now < Volatile.Read(ref _pausedUntil))
        {
            return false;
        }
        return _interval == 0 || now >= _nextSendAt;
    }

    /// <summary>
    /// Schedules the next push one interval later. A publisher that fell behind (window full, slow acks)
    /// may catch up by at most 50 ms worth of pushes, so a stall is never followed by a burst.
    /// </summary>
    private void Paced(long now)
    {
        if (_interval != 0)
        {
            _nextSendAt = Math.Max(_nextSendAt, now - (Stopwatch.Frequency / 20)) + _interval;
        }
    }

    private void OnPublishReply(long id, bool ok, long offset, ReadOnlySpan<byte> record)
    {
        if (_ringIds is null)
        {
            return;
        }
        var slot = (int)(id & RingMask);
        if (Volatile.Read(ref _ringIds[slot]) != id)
        {
            return;   // not a push of ours (e.g. the heartbeat's reply)
        }
        _ringIds[slot] = 0;
        var now = Stopwatch.GetTimestamp();
        Interlocked.Decrement(ref _inFlight);
        if (ok)
        {
            _acked++;
            AckLatency.Record(Elapsed.Micros(_ringSent![slot], now));
            if (offset > _maxAckedOffset)
            {
                Volatile.Write(ref _maxAckedOffset, offset);
            }
        }
        else
        {
            var error = _protocol.ParseError(record);
            if (error.Reason == ErrorReasons.RateLimited)
            {
                _context.OnRateLimited();
                Volatile.Write(ref _pausedUntil, now + (error.RetryAfterMs * Stopwatch.Frequency / 1000));
            }
            else if (!_closing)
            {
                _context.Errors.Add($"push refused: {error.Reason}");
            }
        }
        _pumpNeeded = _publishing;
    }
}
