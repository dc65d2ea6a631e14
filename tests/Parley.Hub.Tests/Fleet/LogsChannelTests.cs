using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Parley.Hub.Fleet;

namespace Parley.Hub.Tests.Fleet;

/// <summary><c>logs:&lt;instance&gt;</c> over in-memory connections, with a real supervised process writing the log.</summary>
public sealed class LogsChannelTests : IAsyncDisposable
{
    private static readonly FleetActor Admin = new("owner1", IsAdmin: true);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "parley-logs-" + Guid.NewGuid().ToString("N"));

    public ValueTask DisposeAsync()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
        return ValueTask.CompletedTask;
    }

    // The last word of each line ("<time> stdout line17" → "line17"), over every backlog and lines frame.
    private static List<(string Event, List<string> Words, long? Skipped)> Tails(InMemoryTransport transport) =>
        [.. transport.Frames.Select(Frame.Parse).Where(f => f.Event is "backlog" or "lines").Select(f => (
            f.Event,
            f.Payload.GetProperty("lines").EnumerateArray().Select(l => l.GetString()!.Split(' ')[^1]).ToList(),
            f.Payload.TryGetProperty("skipped", out var s) ? s.GetInt64() : (long?)null))];

    [Fact]
    public async Task A_tail_that_falls_behind_gets_the_newest_lines_with_how_many_it_skipped_and_is_never_closed()
    {
        await using var harness = HubHarness.Start(o => o.StreamLagBytes = 4096);
        await using var fleet = new FleetService(new InMemoryInstanceStore(), new FleetOptions(), _directory, TimeProvider.System, NullLogger.Instance);
        harness.Hub.Router.Add(new LogsChannel(harness.Hub, fleet));
        await fleet.StartAsync();
        var go = Path.Combine(_directory, "go");
        // "first", then (once the test says go) line0 … line499 and "done", then it idles.
        var script = $"echo first; while [ ! -e '{go}' ]; do sleep 0.02; done; i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done; echo done; sleep 30";
        await fleet.CreateAsync(Admin, "talker", new InstanceSpec("/bin/sh", ["-c", script], null, new Dictionary<string, string>(), null, null, RestartPolicy.Never), start: true);

        var (healthy, healthyT) = harness.Connect("healthy");
        var (slow, slowT) = harness.Connect("slow");
        await HubHarness.JoinAsync(healthy, healthyT, "logs:talker", payloadJson: """{"backlog": 10}""");
        await HubHarness.JoinAsync(slow, slowT, "logs:talker", payloadJson: """{"backlog": 10}""");
        static bool Saw(InMemoryTransport t, string word) => Tails(t).Any(x => x.Words.Contains(word));
        await slowT.WaitForAsync(_ => Saw(slowT, "first"), "the first line");

        slowT.Backlog = 4096; // it stopped reading
        await File.WriteAllTextAsync(go, "");
        await healthyT.WaitForAsync(_ => Saw(healthyT, "done"), "the healthy tail to see everything");
        Assert.True(Tails(healthyT).SelectMany(x => x.Words).Contains("line0"), string.Join(",", healthyT.Frames.Take(5)));
        Assert.Equal([.. Enumerable.Range(0, 500).Select(i => $"line{i}"), "done"],
            Tails(healthyT).SelectMany(x => x.Words).SkipWhile(w => w != "line0").ToList());
        Assert.False(Saw(slowT, "line0"), "the lagging tail was sent nothing");

        slowT.Backlog = 0;
        await slowT.WaitForAsync(_ => Tails(slowT).Any(x => x.Skipped is not null), "the resync");
        var resync = Tails(slowT).Single(x => x.Skipped is not null);
        Assert.Equal("lines", resync.Event);
        Assert.Equal([.. Enumerable.Range(491, 9).Select(i => $"line{i}"), "done"], resync.Words); // the join's backlog of 10
        Assert.Equal(491, resync.Skipped); // line0 … line490
        Assert.Null(slowT.CloseCode);
        Assert.Equal(1, harness.Hub.Metrics.StreamResyncs);
    }
}
