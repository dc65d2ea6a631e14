using System.Numerics;

namespace Parley.Bench;

/// <summary>
/// An HDR-style log-bucketed histogram of latencies in whole microseconds. Values below 256 µs are
/// counted exactly; above that each power of two is split into 128 buckets, so a reported value is
/// within 0.8 % of the recorded one. Values above <see cref="MaxValueMicros"/> (about 19 hours) are
/// clamped. 32 KiB per histogram.
/// </summary>
/// <remarks>
/// Not thread-safe for writers: each receive loop records into its own histogram (one writer at a
/// time), and the coordinator merges them. A merge that races a writer may miss the one count being
/// written, which is harmless for percentiles.
/// </remarks>
public sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;
    private const int SubBucketCount = 1 << SubBucketBits;          // 128 buckets per power of two
    private const int ExactLimit = SubBucketCount * 2;               // 0..255 are exact
    private const int MaxExponent = 36;                              // 2^36 µs ≈ 19 h

    /// <summary>The largest value recorded as itself; larger values are clamped to it.</summary>
    public const long MaxValueMicros = (1L << MaxExponent) - 1;

    private static readonly int BucketCount = IndexOf(MaxValueMicros) + 1;

    private readonly long[] _counts = new long[BucketCount];
    private long _total;
    private long _max;

    /// <summary>Values recorded.</summary>
    public long Count => Volatile.Read(ref _total);

    /// <summary>The largest value recorded, in µs (0 when empty).</summary>
    public long MaxMicros => Volatile.Read(ref _max);

    /// <summary>Counts one latency of <paramref name="micros"/> µs (negative counts as 0).</summary>
    public void Record(long micros)
    {
        if (micros < 0)
        {
            micros = 0;
        }
        else if (micros > MaxValueMicros)
        {
            micros = MaxValueMicros;
        }
        _counts[IndexOf(micros)]++;
        _total++;
        if (micros > _max)
        {
            _max = micros;
        }
    }

    /// <summary>Adds every count of <paramref name="other"/> to this histogram.</summary>
    public void Add(LatencyHistogram other)
    {
        var source = other._counts;
        long total = 0;
        for (var i = 0; i < source.Length; i++)
        {
            var c = Volatile.Read(ref source[i]);
            _counts[i] += c;
            total += c;
        }
        _total += total;
        _max = Math.Max(_max, other.MaxMicros);
    }

    /// <summary>
    /// Removes the counts of <paramref name="earlier"/>, a snapshot taken from the same recorders
    /// before, leaving what was recorded in between. The max becomes that of the highest bucket left
    /// (exact when that bucket holds the overall max).
    /// </summary>
    public void Subtract(LatencyHistogram earlier)
    {
        long total = 0;
        var highest = -1;
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] -= Math.Min(earlier._counts[i], _counts[i]);
            if (_counts[i] != 0)
            {
                total += _counts[i];
                highest = i;
            }
        }
        _total = total;
        _max = highest < 0 ? 0 : Math.Min(_max, HighestEquivalent(highest));
    }

    /// <summary>Forgets everything recorded.</summary>
    public void Reset()
    {
        Array.Clear(_counts);
        _total = 0;
        _max = 0;
    }

    /// <summary>
    /// The value at <paramref name="percentile"/> (0–100) in µs: the highest value equivalent to the
    /// bucket where the running count reaches that share of all counts; 0 when empty.
    /// </summary>
    public long ValueAtPercentile(double percentile)
    {
        if (_total == 0)
        {
            return 0;
        }
        percentile = Math.Clamp(percentile, 0, 100);
        var target = Math.Max(1, (long)Math.Ceiling(percentile / 100.0 * _total));
        long running = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            running += _counts[i];
            if (running >= target)
            {
                // Never report more than the largest value actually seen.
                return Math.Min(HighestEquivalent(i), Math.Max(_max, LowestEquivalent(i)));
            }
        }
        return _max;
    }

    /// <summary>p50, p99 and p99.9 in milliseconds (three decimals), with the count and max.</summary>
    public LatencySummary Summarize() => new(
        Micros(ValueAtPercentile(50)),
        Micros(ValueAtPercentile(99)),
        Micros(ValueAtPercentile(99.9)),
        Micros(_total == 0 ? 0 : _max),
        _total);

    private static double Micros(long micros) => Math.Round(micros / 1000.0, 3);

    internal static int IndexOf(long value)
    {
        if (value < ExactLimit)
        {
            return (int)value;
        }
        var msb = 63 - BitOperations.LeadingZeroCount((ulong)value);   // ≥ 8
        var shift = msb - SubBucketBits;                                // ≥ 1
        var sub = (int)(value >> shift);                                // 128..255
        return ((shift + 1) * SubBucketCount) + (sub - SubBucketCount);
    }

    internal static long LowestEquivalent(int index)
    {
        if (index < ExactLimit)
        {
            return index;
        }
        var shift = (index / SubBucketCount) - 1;
        var sub = (index % SubBucketCount) + SubBucketCount;
        return (long)sub << shift;
    }

    internal static long HighestEquivalent(int index)
    {
        if (index < ExactLimit)
        {
            return index;
        }
        var shift = (index / SubBucketCount) - 1;
        return LowestEquivalent(index) + (1L << shift) - 1;
    }
}

/// <summary>Latency percentiles in milliseconds; <c>count</c> is how many values were recorded.</summary>
public sealed record LatencySummary(double P50, double P99, double P999, double Max, long Count);
