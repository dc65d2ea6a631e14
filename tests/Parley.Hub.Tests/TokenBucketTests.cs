using Parley.Hub.Connections;

namespace Parley.Hub.Tests;

public class TokenBucketTests
{
    [Fact]
    public void Burst_then_refusal_with_a_positive_retry_after()
    {
        var bucket = new TokenBucket(ratePerSecond: 1, burst: 3);

        Assert.True(bucket.TryTake(out var r1));
        Assert.True(bucket.TryTake(out var r2));
        Assert.True(bucket.TryTake(out var r3));
        Assert.Equal((0, 0, 0), (r1, r2, r3));

        Assert.False(bucket.TryTake(out var retryAfterMs));
        Assert.InRange(retryAfterMs, 1, 1000);
        Assert.False(bucket.TryTake(out var again));
        Assert.InRange(again, 1, 1000);
    }

    [Fact]
    public void Refills_at_the_rate()
    {
        var bucket = new TokenBucket(ratePerSecond: 200, burst: 1); // one token per 5 ms
        Assert.True(bucket.TryTake(out _));
        Assert.False(bucket.TryTake(out var retryAfterMs));
        Assert.InRange(retryAfterMs, 1, 5);

        Thread.Sleep(50);

        Assert.True(bucket.TryTake(out _));
    }

    [Fact]
    public void Refill_never_exceeds_the_burst()
    {
        var bucket = new TokenBucket(ratePerSecond: 1000, burst: 2);
        Thread.Sleep(30); // would be 30 tokens without the cap

        Assert.True(bucket.TryTake(out _));
        Assert.True(bucket.TryTake(out _));
        Assert.False(bucket.TryTake(out var retryAfterMs));
        Assert.True(retryAfterMs > 0);
    }
}
