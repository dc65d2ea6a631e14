using System.Text.Json.Nodes;
using Parley.Bench.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Parley.Bench.Tests;

/// <summary>
/// Every scenario, through the same <see cref="BenchRunner"/> the CLI uses, against an in-process hub with tiny
/// counts and ~1 s windows. They check that results are sane, never that a number is high.
/// </summary>
public sealed class ScenarioSmokeTests(BenchHub hub, ITestOutputHelper output) : IClassFixture<BenchHub>
{
    private static readonly TimeSpan RunBound = TimeSpan.FromSeconds(30);

    private BenchOptions Options(BenchScenario scenario) => BenchOptions.For(scenario) with
    {
        Url = hub.BaseUrl,
        Warmup = TimeSpan.FromMilliseconds(200),
        Duration = TimeSpan.FromSeconds(1),
        Timeout = TimeSpan.FromSeconds(15),
    };

    private async Task<BenchResult> RunAsync(BenchOptions options)
    {
        using var progress = new StringWriter();
        BenchResult result;
        try
        {
            result = await BenchRunner.RunAsync(options, progress).WaitAsync(RunBound);
        }
        finally
        {
            output.WriteLine(progress.ToString());
        }
        output.WriteLine(result.ToTable());
        output.WriteLine(result.ToJson());
        return result;
    }

    [Fact]
    public async Task Fanout_delivers_acks_and_measures_latency()
    {
        var result = await RunAsync(Options(BenchScenario.Fanout) with { Subscribers = 5, Sample = 2, Window = 8 });

        Assert.True(result.Ok, string.Join("; ", result.ErrorMessages ?? []));
        Assert.Equal(0, result.Errors);
        Assert.Equal("fanout", result.Scenario);
        Assert.Equal("parley", result.Target);
        Assert.True(result.Durable);
        Assert.True(result.Deliveries > 0);
        Assert.True(result.DeliveriesPerS > 0);
        Assert.True(result.Acked > 0);
        Assert.True(result.AckedPerS > 0);
        // Every subscriber gets every message, so deliveries track acks × subscribers (within the window edges).
        Assert.InRange(result.Deliveries!.Value, 1, (result.Acked!.Value + 100) * 5);
        AssertOrdered(result.LatencyMs!);
        AssertOrdered(result.AckLatencyMs!);
        Assert.Equal("publish_to_delivery", result.LatencyKind);
        Assert.Null(result.ServerCpuUsPerDelivery);
    }

    [Fact]
    public async Task Channels_spreads_publishers_over_channels()
    {
        var result = await RunAsync(Options(BenchScenario.Channels) with { Channels = 4, PerChannel = 2, Publishers = 2, Window = 4 });

        Assert.True(result.Ok, string.Join("; ", result.ErrorMessages ?? []));
        Assert.Equal(4, result.Channels);
        Assert.Equal(8, result.Subscribers);
        Assert.True(result.Deliveries > 0);
        Assert.True(result.Acked > 0);
        AssertOrdered(result.LatencyMs!);
    }

    [Fact]
    public async Task Durable_reports_acked_appends_and_ack_latency()
    {
        var result = await RunAsync(Options(BenchScenario.Durable) with { Publishers = 4, Window = 4 });

        Assert.True(result.Ok, string.Join("; ", result.ErrorMessages ?? []));
        Assert.True(result.Durable);
        Assert.True(result.Acked > 0);
        Assert.True(result.AckedPerS > 0);
        Assert.Null(result.Deliveries);
        Assert.Equal("push_to_ack", result.LatencyKind);
        AssertOrdered(result.LatencyMs!);
        Assert.Equal(result.LatencyMs, result.AckLatencyMs);
    }

    [Fact]
    public async Task Connections_reports_connect_rate_and_memory_per_connection()
    {
        var result = await RunAsync(Options(BenchScenario.Connections) with { Connections = 300, Warmup = TimeSpan.Zero, Duration = TimeSpan.FromMilliseconds(500) });

        Assert.True(result.Ok, string.Join("; ", result.ErrorMessages ?? []));
        Assert.Equal(300, result.Connections);
        Assert.True(result.ConnectPerS > 0);
        Assert.Equal("metrics", result.RssSource);
        Assert.True(result.RssBeforeBytes > 0);
        Assert.True(result.RssAfterBytes > 0);
        Assert.NotNull(result.RssPerConnectionBytes);
    }

    [Fact]
    public async Task Recovery_loses_nothing_and_repeats_nothing()
    {
        var result = await RunAsync(Options(BenchScenario.Recovery) with
        {
            Subscribers = 20,
            Rate = 200,
            Warmup = TimeSpan.FromMilliseconds(500),
            Away = TimeSpan.FromMilliseconds(300),
            Duration = TimeSpan.FromMilliseconds(800),
        });

        Assert.True(result.Ok, string.Join("; ", result.ErrorMessages ?? []));
        Assert.True(result.Recovered);
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.Duplicates);
        Assert.True(result.Published > 0);
        Assert.NotNull(result.RecoveredAllS);
        Assert.True(result.RecoveredAllS >= 0);
        // They were away while messages were acked, so something was replayed.
        Assert.True(result.Replayed > 0);
    }

    [Fact]
    public async Task Server_pid_adds_cpu_figures()
    {
        // In-process the "server" is this test process: enough to exercise /proc/PID/stat and status.
        var result = await RunAsync(Options(BenchScenario.Fanout) with { Subscribers = 3, Sample = 1, Window = 4, ServerPid = Environment.ProcessId });

        Assert.True(result.Ok, string.Join("; ", result.ErrorMessages ?? []));
        Assert.NotNull(result.ServerCpuMs);
        Assert.True(result.ServerCpuMs >= 0);
        Assert.NotNull(result.ServerCpuUsPerDelivery);
        Assert.True(result.ServerCpuUsPerDelivery >= 0);
    }

    [Fact]
    public async Task Json_names_are_snake_case_and_cpu_per_delivery_is_always_present()
    {
        var result = await RunAsync(Options(BenchScenario.Fanout) with { Subscribers = 2, Sample = 1, Window = 2, Duration = TimeSpan.FromMilliseconds(300), Warmup = TimeSpan.Zero });
        var json = JsonNode.Parse(result.ToJson())!.AsObject();

        foreach (var name in new[] { "scenario", "target", "url", "ok", "durable", "duration_s", "warmup_s", "errors", "rate_limited", "server_cpu_us_per_delivery",
                     "publishers", "subscribers", "size", "window", "deliveries_per_s", "acked_per_s", "latency_ms" })
        {
            Assert.True(json.ContainsKey(name), $"missing {name} in {json}");
        }
        Assert.Null(json["server_cpu_us_per_delivery"]);
        Assert.True(json["latency_ms"]!.AsObject().ContainsKey("p999"));
        Assert.False(json.ContainsKey("lost"));
        var back = BenchResult.FromJson(result.ToJson())!;
        Assert.Equal(result.DeliveriesPerS, back.DeliveriesPerS);
        Assert.Equal(result.LatencyMs, back.LatencyMs);
    }

    [Fact]
    public async Task Unreachable_server_fails_the_run_with_a_clear_error()
    {
        var closedPort = new Uri("http://127.0.0.1:1");
        var result = await RunAsync(Options(BenchScenario.Fanout) with { Url = closedPort, Subscribers = 2 });

        Assert.False(result.Ok);
        Assert.True(result.Errors > 0);
        Assert.Contains(result.ErrorMessages!, m => m.Contains("cannot connect", StringComparison.Ordinal));
        Assert.Equal(1, BenchRunner.ExitCode(result));
    }

    private static void AssertOrdered(LatencySummary latency)
    {
        Assert.True(latency.Count > 0);
        Assert.True(latency.P50 >= 0);
        Assert.True(latency.P50 <= latency.P99, $"p50 {latency.P50} > p99 {latency.P99}");
        Assert.True(latency.P99 <= latency.P999, $"p99 {latency.P99} > p999 {latency.P999}");
        Assert.True(latency.P999 <= latency.Max, $"p999 {latency.P999} > max {latency.Max}");
    }
}

/// <summary>Against a rate-limited hub the bench counts <c>rate_limited</c>, prints the hint and fails the run.</summary>
public sealed class RateLimitTests(RateLimitedHub hub) : IClassFixture<RateLimitedHub>
{
    [Fact]
    public async Task Rate_limited_replies_are_counted_and_fail_the_run()
    {
        using var progress = new StringWriter();
        var options = BenchOptions.For(BenchScenario.Fanout) with
        {
            Url = hub.BaseUrl,
            Subscribers = 1,
            Sample = 1,
            Window = 64,
            Warmup = TimeSpan.Zero,
            Duration = TimeSpan.FromSeconds(1),
        };
        var result = await BenchRunner.RunAsync(options, progress).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(result.RateLimited > 0);
        Assert.False(result.Ok);
        Assert.Contains("PARLEY_HUB__PUSHESPERSECOND", progress.ToString(), StringComparison.Ordinal);
    }
}
