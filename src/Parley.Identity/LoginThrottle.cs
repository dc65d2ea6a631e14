using System.Collections.Concurrent;

namespace Parley.Identity;

/// <summary>
/// Token buckets per user name and per address for login attempts: a burst, then one attempt per
/// refill interval. Bounded: past <see cref="MaxTracked"/> keys, full buckets are forgotten.
/// </summary>
internal sealed class LoginThrottle(int burst, TimeSpan refill, TimeProvider time)
{
    private const int MaxTracked = 50_000;
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

    /// <summary>Takes one attempt for <paramref name="key"/>; false (and the wait) when none is left.</summary>
    public bool TryTake(string key, out TimeSpan retryAfter)
    {
        var now = time.GetTimestamp();
        if (_buckets.Count > MaxTracked)
        {
            Prune(now);
        }
        var bucket = _buckets.GetOrAdd(key, static (_, state) => new Bucket(state.Burst, state.Now), (Burst: (double)burst, Now: now));
        lock (bucket)
        {
            Refill(bucket, now);
            if (bucket.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                retryAfter = TimeSpan.Zero;
                return true;
            }
            retryAfter = refill * (1 - bucket.Tokens);
            return false;
        }
    }

    /// <summary>True (with the wait) when <paramref name="key"/> has no attempt left; takes nothing.</summary>
    public bool IsExhausted(string key, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (!_buckets.TryGetValue(key, out var bucket))
        {
            return false;
        }
        lock (bucket)
        {
            Refill(bucket, time.GetTimestamp());
            if (bucket.Tokens >= 1)
            {
                return false;
            }
            retryAfter = refill * (1 - bucket.Tokens);
            return true;
        }
    }

    private void Refill(Bucket bucket, long now)
    {
        var elapsed = time.GetElapsedTime(bucket.LastTicks, now);
        bucket.Tokens = Math.Min(burst, bucket.Tokens + (elapsed / refill));
        bucket.LastTicks = now;
    }

    private void Prune(long now)
    {
        foreach (var (key, bucket) in _buckets)
        {
            lock (bucket)
            {
                Refill(bucket, now);
                if (bucket.Tokens >= burst)
                {
                    _buckets.TryRemove(key, out _);
                }
            }
        }
    }

    private sealed class Bucket(double tokens, long lastTicks)
    {
        public double Tokens = tokens;
        public long LastTicks = lastTicks;
    }
}
