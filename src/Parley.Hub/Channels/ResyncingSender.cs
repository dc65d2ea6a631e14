using Parley.Hub.Connections;

namespace Parley.Hub.Channels;

/// <summary>
/// Sends one subscriber's deltas on a snapshot + delta stream (<c>fleet:instances</c>, <c>logs:</c>,
/// <c>events:messages</c>, <c>term:</c>) without ever closing it for being slow. When the connection has
/// more than <see cref="BudgetBytes"/> queued, the subscriber is <i>lagging</i>: this delta and every later
/// one are dropped. A poll (every 50 ms while lagging) waits for the queue to drain to a quarter of the
/// budget, then calls the stream's resync, which sends a fresh snapshot with <see cref="SendSnapshot"/>,
/// ordered with the stream's deltas by the stream itself. So the consumer is never shown a stale delta
/// and never misses a change: the snapshot holds everything the dropped deltas said. Counted in
/// <see cref="HubMetrics.StreamResyncs"/>.
/// </summary>
public sealed class ResyncingSender : IDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    private readonly HubConnection _connection;
    private readonly Func<ResyncingSender, ValueTask> _resync;
    private readonly Lock _lock = new();
    private bool _lagging;
    private bool _resyncing;
    private bool _disposed;
    private long _dropped;
    private Timer? _poll;

    /// <param name="connection">The subscriber's connection.</param>
    /// <param name="budgetBytes">Queued bytes above which the subscriber counts as lagging.</param>
    /// <param name="resync">Sends a fresh snapshot through <see cref="SendSnapshot"/>, ordered with the stream's deltas; called from a timer thread.</param>
    public ResyncingSender(HubConnection connection, long budgetBytes, Func<ResyncingSender, ValueTask> resync)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(resync);
        ArgumentOutOfRangeException.ThrowIfLessThan(budgetBytes, 1);
        _connection = connection;
        BudgetBytes = budgetBytes;
        _resync = resync;
    }

    /// <summary>Queued bytes above which the subscriber counts as lagging.</summary>
    public long BudgetBytes { get; }

    /// <summary>The connection this sender writes to.</summary>
    public HubConnection Connection => _connection;

    /// <summary>True from the first dropped delta until the fresh snapshot is queued.</summary>
    public bool IsLagging
    {
        get
        {
            lock (_lock)
            {
                return _lagging;
            }
        }
    }

    /// <summary>Deltas dropped since the last snapshot (what the resync makes up for).</summary>
    public long DroppedSinceSnapshot
    {
        get
        {
            lock (_lock)
            {
                return _dropped;
            }
        }
    }

    /// <summary>Times this subscriber fell behind and was (or is being) resynced.</summary>
    public long Resyncs { get; private set; }

    /// <summary>
    /// Queues a delta, or drops it when the subscriber is lagging or this delta would take a connection that
    /// already has bytes queued over the budget (which starts a lag). Returns true when the delta was queued.
    /// </summary>
    public bool SendDelta(byte[] frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        lock (_lock)
        {
            if (_disposed)
            {
                return false;
            }
            if (_lagging)
            {
                _dropped++;
                return false;
            }
            // A delta bigger than the budget still goes to a connection with nothing queued.
            var queued = _connection.QueuedBytes;
            if (queued > 0 && queued + frame.Length > BudgetBytes)
            {
                _lagging = true;
                _dropped = 1;
                Resyncs++;
                _connection.Hub.Metrics.StreamResync();
                HubLog.StreamLagging(_connection.Hub.Logger, _connection.Id, BudgetBytes);
                _poll ??= new Timer(static s => ((ResyncingSender)s!).Poll(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _poll.Change(PollInterval, PollInterval);
                return false;
            }
            return _connection.Send(frame);
        }
    }

    /// <summary>Queues a snapshot; it ends a lag, so the deltas after it are sent again.</summary>
    public bool SendSnapshot(byte[] frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        lock (_lock)
        {
            if (_disposed)
            {
                return false;
            }
            _lagging = false;
            _resyncing = false;
            _dropped = 0;
            return _connection.Send(frame);
        }
    }

    private void Poll()
    {
        lock (_lock)
        {
            if (_disposed || !_lagging || _resyncing)
            {
                return;
            }
            if (_connection.IsClosing)
            {
                _poll?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                return;
            }
            if (_connection.QueuedBytes > BudgetBytes / 4)
            {
                return;
            }
            _resyncing = true; // one resync at a time; SendSnapshot ends it
            _poll?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
        _ = ResyncAsync();
    }

    private async Task ResyncAsync()
    {
        try
        {
            await _resync(this);
        }
        catch (Exception ex)
        {
            HubLog.StreamResyncFailed(_connection.Hub.Logger, _connection.Id, ex);
            lock (_lock)
            {
                _resyncing = false;
                if (!_disposed)
                {
                    _poll?.Change(PollInterval, PollInterval); // try again
                }
            }
        }
    }

    /// <summary>Stops the poll; later sends are ignored.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _poll?.Dispose();
            _poll = null;
        }
    }
}
