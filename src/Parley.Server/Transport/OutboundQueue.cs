using System.Threading.Tasks.Sources;

namespace Parley.Server.Transport;

/// <summary>
/// A connection's outbound queue: many producers (fan-out, replies, pongs), one consumer (the write
/// loop). Lighter than a <c>Channel</c> (no segments or waiter objects per connection), because idle
/// memory per socket is a goal: an idle queue holds two empty lists and one reusable waiter.
/// Producers never wait; the consumer takes everything queued at once.
/// </summary>
internal sealed class OutboundQueue : IValueTaskSource<bool>
{
    private readonly Lock _lock = new();
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = true };
    private List<object>? _pending;
    private List<object>? _spare;
    private bool _consumerWaiting;
    private bool _completed;

    /// <summary>Queues an item; false once the queue is completed.</summary>
    public bool TryEnqueue(object item)
    {
        lock (_lock)
        {
            if (_completed)
            {
                return false;
            }
            (_pending ??= _spare ?? new List<object>(4)).Add(item);
            if (ReferenceEquals(_pending, _spare))
            {
                _spare = null;
            }
            if (!_consumerWaiting)
            {
                return true;
            }
            _consumerWaiting = false;
        }
        _waiter.SetResult(true);
        return true;
    }

    /// <summary>No more items: the consumer gets what is queued, then <see cref="WaitAsync"/> returns false.</summary>
    public void Complete()
    {
        lock (_lock)
        {
            if (_completed)
            {
                return;
            }
            _completed = true;
            if (!_consumerWaiting)
            {
                return;
            }
            _consumerWaiting = false;
        }
        _waiter.SetResult(false);
    }

    /// <summary>True once <see cref="Complete"/> was called.</summary>
    public bool IsCompleted
    {
        get
        {
            lock (_lock)
            {
                return _completed;
            }
        }
    }

    /// <summary>
    /// Takes everything queued (consumer only). Returns null when nothing is queued. Hand the list back
    /// with <see cref="Recycle"/> after use.
    /// </summary>
    public List<object>? TakeAll()
    {
        lock (_lock)
        {
            var taken = _pending;
            _pending = null;
            return taken is { Count: > 0 } ? taken : null;
        }
    }

    /// <summary>Returns a drained list for reuse (a large one is dropped so an idle socket stays small).</summary>
    public void Recycle(List<object> list)
    {
        list.Clear();
        if (list.Capacity > 64)
        {
            return;
        }
        lock (_lock)
        {
            _spare ??= list;
        }
    }

    /// <summary>Waits until something is queued (true) or the queue is completed and empty (false). Consumer only.</summary>
    public ValueTask<bool> WaitAsync()
    {
        lock (_lock)
        {
            if (_pending is { Count: > 0 })
            {
                return new ValueTask<bool>(true);
            }
            if (_completed)
            {
                return new ValueTask<bool>(false);
            }
            _waiter.Reset();
            _consumerWaiting = true;
            return new ValueTask<bool>(this, _waiter.Version);
        }
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
