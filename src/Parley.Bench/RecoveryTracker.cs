using System.Diagnostics;

namespace Parley.Bench;

/// <summary>
/// One recovering subscriber's view of a topic's offsets, across its sockets: a bitmap of offsets received
/// after its first join's head, the highest offset up to which nothing is missing, and duplicates.
/// Written only by the subscriber's receive loop (one socket at a time); read by the coordinator.
/// </summary>
internal sealed class RecoveryTracker
{
    private ulong[] _bits = new ulong[64];
    private long _base;
    private long _contiguous;
    private long _duplicates;
    private long _goal = long.MaxValue;
    private long _caughtUpAt;

    /// <summary>The head of the first join: offsets at or below it were published before the run.</summary>
    public long Base => _base;

    /// <summary>Every offset from <see cref="Base"/> + 1 up to this one has been received.</summary>
    public long Contiguous => Volatile.Read(ref _contiguous);

    /// <summary>Offsets received more than once, or at or below <see cref="Base"/>.</summary>
    public long Duplicates => Volatile.Read(ref _duplicates);

    /// <summary>Stopwatch timestamp when <see cref="Contiguous"/> first reached the goal; 0 until then.</summary>
    public long CaughtUpAt => Volatile.Read(ref _caughtUpAt);

    /// <summary>Called with the first join's head, before any delivery.</summary>
    public void Start(long head)
    {
        _base = head;
        _contiguous = head;
    }

    /// <summary>Sets the offset whose arrival counts as caught up (the publisher's acked head when the reconnect began).</summary>
    public void SetGoal(long offset)
    {
        Volatile.Write(ref _goal, offset);
        if (Volatile.Read(ref _contiguous) >= offset)
        {
            Interlocked.CompareExchange(ref _caughtUpAt, Stopwatch.GetTimestamp(), 0);
        }
    }

    /// <summary>Counts a delivery of <paramref name="offset"/>.</summary>
    public void Record(long offset)
    {
        var index = offset - _base - 1;
        if (index < 0)
        {
            Interlocked.Increment(ref _duplicates);
            return;
        }
        var word = (int)(index >> 6);
        if (word >= _bits.Length)
        {
            Array.Resize(ref _bits, Math.Max(_bits.Length * 2, word + 1));
        }
        var mask = 1UL << (int)(index & 63);
        if ((_bits[word] & mask) != 0)
        {
            Interlocked.Increment(ref _duplicates);
            return;
        }
        _bits[word] |= mask;
        var contiguous = _contiguous;
        while (Has(contiguous + 1))
        {
            contiguous++;
        }
        if (contiguous != _contiguous)
        {
            Volatile.Write(ref _contiguous, contiguous);
            if (contiguous >= Volatile.Read(ref _goal))
            {
                Interlocked.CompareExchange(ref _caughtUpAt, Stopwatch.GetTimestamp(), 0);
            }
        }
    }

    /// <summary>Offsets in (<see cref="Base"/>, <paramref name="target"/>] never received.</summary>
    public long Missing(long target)
    {
        long missing = 0;
        for (var offset = Math.Max(Contiguous, _base) + 1; offset <= target; offset++)
        {
            if (!Has(offset))
            {
                missing++;
            }
        }
        return missing;
    }

    private bool Has(long offset)
    {
        var index = offset - _base - 1;
        var word = index >> 6;
        return index >= 0 && word < _bits.Length && (_bits[word] & (1UL << (int)(index & 63))) != 0;
    }
}
