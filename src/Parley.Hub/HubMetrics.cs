namespace Parley.Hub;

/// <summary>
/// Counters the hub keeps for <c>/metrics</c>. Plain interlocked longs: a broadcast adds its
/// subscriber count once, so counting never costs per delivery. The server's exporter reads them.
/// </summary>
public sealed class HubMetrics
{
    private long _connectionsOpened;
    private long _connectionsClosed;
    private long _joins;
    private long _pushes;
    private long _messagesStored;
    private long _messagesDelivered;
    private long _bytesIn;
    private long _bytesOut;
    private long _slowConsumerDisconnects;
    private long _rateLimitedPushes;
    private long _rateLimitCloses;
    private long _protocolErrorCloses;
    private long _idleTimeoutCloses;
    private long _streamResyncs;
    private long _terminalDrops;

    /// <summary>Sockets currently open.</summary>
    public long Connections => Volatile.Read(ref _connectionsOpened) - Volatile.Read(ref _connectionsClosed);
    public long ConnectionsOpened => Volatile.Read(ref _connectionsOpened);
    public long Joins => Volatile.Read(ref _joins);
    public long Pushes => Volatile.Read(ref _pushes);
    public long MessagesStored => Volatile.Read(ref _messagesStored);
    public long MessagesDelivered => Volatile.Read(ref _messagesDelivered);
    public long BytesIn => Volatile.Read(ref _bytesIn);
    public long BytesOut => Volatile.Read(ref _bytesOut);
    public long SlowConsumerDisconnects => Volatile.Read(ref _slowConsumerDisconnects);
    public long RateLimitedPushes => Volatile.Read(ref _rateLimitedPushes);
    public long RateLimitCloses => Volatile.Read(ref _rateLimitCloses);
    public long ProtocolErrorCloses => Volatile.Read(ref _protocolErrorCloses);
    public long IdleTimeoutCloses => Volatile.Read(ref _idleTimeoutCloses);

    /// <summary>Subscribers of snapshot + delta topics that fell behind and were sent a fresh snapshot instead of their deltas.</summary>
    public long StreamResyncs => Volatile.Read(ref _streamResyncs);

    /// <summary>Terminal output frames not sent to a viewer because it had fallen behind (it catches up with <c>fetch_output</c>).</summary>
    public long TerminalViewerDrops => Volatile.Read(ref _terminalDrops);

    /// <summary>Called once per committed store batch with its duration in seconds.</summary>
    public event Action<double>? CommitObserved;

    public void ConnectionOpened() => Interlocked.Increment(ref _connectionsOpened);
    public void ConnectionClosed() => Interlocked.Increment(ref _connectionsClosed);
    public void Joined() => Interlocked.Increment(ref _joins);
    public void Pushed() => Interlocked.Increment(ref _pushes);
    public void Stored(int count) => Interlocked.Add(ref _messagesStored, count);
    public void Delivered(int count) => Interlocked.Add(ref _messagesDelivered, count);
    public void ReceivedBytes(long count) => Interlocked.Add(ref _bytesIn, count);
    public void SentBytes(long count) => Interlocked.Add(ref _bytesOut, count);
    public void SlowConsumer() => Interlocked.Increment(ref _slowConsumerDisconnects);
    public void RateLimited() => Interlocked.Increment(ref _rateLimitedPushes);
    public void RateLimitClose() => Interlocked.Increment(ref _rateLimitCloses);
    public void ProtocolErrorClose() => Interlocked.Increment(ref _protocolErrorCloses);
    public void IdleTimeoutClose() => Interlocked.Increment(ref _idleTimeoutCloses);
    public void StreamResync() => Interlocked.Increment(ref _streamResyncs);
    public void TerminalViewerDrop() => Interlocked.Increment(ref _terminalDrops);
    public void Committed(double seconds) => CommitObserved?.Invoke(seconds);
}
