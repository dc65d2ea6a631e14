namespace Parley.Bench.Tests;

public sealed class LatencyHistogramTests
{
    [Fact]
    public void Empty_histogram_reports_zero()
    {
        var h = new LatencyHistogram();
        Assert.Equal(0, h.ValueAtPercentile(50));
        Assert.Equal(new LatencySummary(0, 0, 0, 0, 0), h.Summarize());
    }

    [Fact]
    public void Small_values_are_exact()
    {
        var h = new LatencyHistogram();
        for (var v = 1; v <= 100; v++)
        {
            h.Record(v);
        }
        Assert.Equal(50, h.ValueAtPercentile(50));
        Assert.Equal(99, h.ValueAtPercentile(99));
        Assert.Equal(100, h.ValueAtPercentile(99.9));
        Assert.Equal(100, h.ValueAtPercentile(100));
        Assert.Equal(1, h.ValueAtPercentile(0));
    }

    [Fact]
    public void Percentiles_of_a_uniform_spread_are_within_one_percent()
    {
        var h = new LatencyHistogram();
        for (var v = 1; v <= 100_000; v++)
        {
            h.Record(v);
        }
        AssertClose(50_000, h.ValueAtPercentile(50));
        AssertClose(99_000, h.ValueAtPercentile(99));
        AssertClose(99_900, h.ValueAtPercentile(99.9));
        Assert.Equal(100_000, h.ValueAtPercentile(100));
        Assert.Equal(100_000, h.Count);
        var s = h.Summarize();
        Assert.True(s.P50 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max);
        Assert.Equal(100.0, s.Max);
    }

    [Fact]
    public void A_tail_shows_in_p99_and_p999_but_not_p50()
    {
        var h = new LatencyHistogram();
        for (var i = 0; i < 990; i++)
        {
            h.Record(1_000);            // 1 ms
        }
        for (var i = 0; i < 10; i++)
        {
            h.Record(50_000);           // 50 ms
        }
        AssertClose(1_000, h.ValueAtPercentile(50));
        AssertClose(1_000, h.ValueAtPercentile(99));
        AssertClose(50_000, h.ValueAtPercentile(99.9));
    }

    [Fact]
    public void Merging_equals_recording_everything_in_one()
    {
        var a = new LatencyHistogram();
        var b = new LatencyHistogram();
        var all = new LatencyHistogram();
        var random = new Random(42);
        for (var i = 0; i < 10_000; i++)
        {
            var v = (long)Math.Exp(random.NextDouble() * 14);   // 1 µs … ~1.2 s, log-spread
            (i % 2 == 0 ? a : b).Record(v);
            all.Record(v);
        }
        var merged = new LatencyHistogram();
        merged.Add(a);
        merged.Add(b);
        Assert.Equal(all.Count, merged.Count);
        foreach (var p in new[] { 0.0, 10, 50, 90, 99, 99.9, 100 })
        {
            Assert.Equal(all.ValueAtPercentile(p), merged.ValueAtPercentile(p));
        }
        Assert.Equal(all.MaxMicros, merged.MaxMicros);
    }

    [Fact]
    public void Subtracting_a_snapshot_leaves_the_window()
    {
        var recorder = new LatencyHistogram();
        for (var i = 0; i < 1000; i++)
        {
            recorder.Record(100_000);   // warm-up: slow
        }
        var snapshot = new LatencyHistogram();
        snapshot.Add(recorder);
        for (var i = 0; i < 1000; i++)
        {
            recorder.Record(2_000);     // measured: fast
        }
        var window = new LatencyHistogram();
        window.Add(recorder);
        window.Subtract(snapshot);
        Assert.Equal(1000, window.Count);
        AssertClose(2_000, window.ValueAtPercentile(99.9));
        AssertClose(2_000, window.Summarize().Max * 1000);
    }

    [Fact]
    public void Out_of_range_values_are_clamped()
    {
        var h = new LatencyHistogram();
        h.Record(-5);
        h.Record(long.MaxValue);
        Assert.Equal(0, h.ValueAtPercentile(50));
        Assert.Equal(LatencyHistogram.MaxValueMicros, h.ValueAtPercentile(100));
    }

    [Fact]
    public void Bucket_bounds_are_contiguous_and_tight()
    {
        for (long v = 0; v < 5_000_000; v += 1 + (v / 97))
        {
            var index = LatencyHistogram.IndexOf(v);
            Assert.InRange(v, LatencyHistogram.LowestEquivalent(index), LatencyHistogram.HighestEquivalent(index));
            Assert.True(LatencyHistogram.HighestEquivalent(index) - LatencyHistogram.LowestEquivalent(index) <= Math.Max(0, v / 128));
            Assert.Equal(index, LatencyHistogram.IndexOf(LatencyHistogram.HighestEquivalent(index)));
            Assert.Equal(index + 1, LatencyHistogram.IndexOf(LatencyHistogram.HighestEquivalent(index) + 1));
        }
    }

    private static void AssertClose(long expected, double actual) =>
        Assert.InRange(actual, expected * 0.99, expected * 1.01);
}
