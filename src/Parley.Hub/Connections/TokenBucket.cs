using System.Diagnostics;

namespace Parley.Hub.Connections;

/// <summary>A token bucket for one connection's pushes; no timers, refilled lazily on each take.</summary>
internal struct TokenBucket(double ratePerSecond, int burst)
{
    private double _tokens = burst;
    private long _lastTimestamp = Stopwatch.GetTimestamp();

    /// <summary>Takes one token, or says how long until one is available.</summary>
    public bool TryTake(out int retryAfterMs)
    {
        var now = Stopwatch.GetTimestamp();
        var elapsed = (now - _lastTimestamp) / (double)Stopwatch.Frequency;
        _lastTimestamp = now;
        _tokens = Math.Min(burst, _tokens + (elapsed * ratePerSecond));
        if (_tokens >= 1)
        {
            _tokens -= 1;
            retryAfterMs = 0;
            return true;
        }
        retryAfterMs = (int)Math.Ceiling((1 - _tokens) / ratePerSecond * 1000);
        return false;
    }
}
