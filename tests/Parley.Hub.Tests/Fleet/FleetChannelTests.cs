using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Parley.Hub.Auth;
using Parley.Hub.Fleet;

namespace Parley.Hub.Tests.Fleet;

/// <summary><c>fleet:instances</c> over in-memory connections: every watcher's snapshot and deltas form one unbroken history.</summary>
public sealed class FleetChannelTests
{
    private static readonly FleetActor Admin = new("owner1", IsAdmin: true);

    // The statuses that may follow each other for an instance that restarts at once after every exit, and is then stopped.
    private static readonly Dictionary<string, string[]> Next = new()
    {
        ["stopped"] = ["starting"],
        ["starting"] = ["running"],
        ["running"] = ["backoff", "stopping"],
        ["backoff"] = ["starting", "stopped"],
        ["stopping"] = ["stopped"],
    };

    [Fact]
    public async Task Watchers_joining_while_an_instance_flaps_miss_and_repeat_nothing()
    {
        var directory = Path.Combine(Path.GetTempPath(), "parley-fleet-" + Guid.NewGuid().ToString("N"));
        await using var harness = HubHarness.Start();
        var options = new FleetOptions { BackoffInitial = TimeSpan.FromMilliseconds(5), BackoffMax = TimeSpan.FromMilliseconds(5), CrashLoopWindow = TimeSpan.FromMilliseconds(1), StopGracePeriod = TimeSpan.FromSeconds(2) };
        await using var fleet = new FleetService(new InMemoryInstanceStore(), options, directory, TimeProvider.System, NullLogger.Instance);
        harness.Hub.Router.Add(new FleetChannel(harness.Hub, fleet));
        await fleet.StartAsync();
        await fleet.CreateAsync(Admin, "flapper", new InstanceSpec("/bin/sh", ["-c", "exit 0"], null, new Dictionary<string, string>(), null, null, RestartPolicy.Always), start: true);

        var watchers = new List<InMemoryTransport>();
        for (var i = 0; i < 20; i++)
        {
            var (connection, transport) = harness.Connect($"w{i}");
            await HubHarness.JoinAsync(connection, transport, FleetChannel.Topic);
            watchers.Add(transport);
            await Task.Delay(30);
        }
        var stopped = await fleet.StopInstanceAsync(Admin, "flapper");
        Assert.Equal(InstanceStatus.Stopped, stopped.Runtime.Status);
        Assert.True(stopped.Runtime.Restarts > 10, $"only {stopped.Runtime.Restarts} restarts: the test proved little");

        foreach (var transport in watchers)
        {
            var frames = transport.Frames.Select(Frame.Parse).Where(f => f.Topic == FleetChannel.Topic).ToList();
            var snapshot = Assert.Single(frames[0].Payload.GetProperty("response").GetProperty("instances").EnumerateArray());
            var status = snapshot.GetProperty("status").GetString()!;
            var restarts = snapshot.GetProperty("restarts").GetInt32();
            foreach (var change in frames.Skip(1))
            {
                Assert.Equal("status_changed", change.Event);
                var next = change.Payload.GetProperty("status").GetString()!;
                Assert.True(Next[status].Contains(next), $"{transport}: {status} → {next}");
                var count = change.Payload.GetProperty("restarts").GetInt32();
                Assert.Equal(next == "backoff" ? restarts + 1 : restarts, count); // a lost or repeated backoff would break the count
                (status, restarts) = (next, count);
            }
            Assert.Equal(("stopped", stopped.Runtime.Restarts), (status, restarts));
        }
        TryDelete(directory);
    }

    [Fact]
    public async Task A_bad_join_param_or_topic_is_refused()
    {
        await using var harness = HubHarness.Start();
        var directory = Path.Combine(Path.GetTempPath(), "parley-fleet-" + Guid.NewGuid().ToString("N"));
        await using var fleet = new FleetService(new InMemoryInstanceStore(), new FleetOptions(), directory, TimeProvider.System, NullLogger.Instance);
        harness.Hub.Router.Add(new FleetChannel(harness.Hub, fleet));
        var (connection, transport) = harness.Connect("c1", principal: new ConnectionPrincipal("mia", true, ["member"]));
        await HubHarness.SendAsync(connection, "1", "1", FleetChannel.Topic, "phx_join", """{"include_archived": "yes"}""");
        await HubHarness.SendAsync(connection, "2", "2", "fleet:other", "phx_join");
        var replies = transport.Frames.Select(Frame.Parse).Select(f => f.Payload.GetProperty("response").GetProperty("reason").GetString()).ToList();
        Assert.Equal(["invalid_payload", "invalid_topic"], replies);
        TryDelete(directory);
    }

    [Fact]
    public async Task A_watcher_that_falls_behind_is_not_closed_its_deltas_are_dropped_and_a_fresh_snapshot_follows()
    {
        var directory = Path.Combine(Path.GetTempPath(), "parley-fleet-" + Guid.NewGuid().ToString("N"));
        await using var harness = HubHarness.Start(o => o.StreamLagBytes = 64 * 1024);
        await using var fleet = new FleetService(new InMemoryInstanceStore(), new FleetOptions(), directory, TimeProvider.System, NullLogger.Instance);
        harness.Hub.Router.Add(new FleetChannel(harness.Hub, fleet));
        await fleet.StartAsync();
        var spec = new InstanceSpec("/bin/true", [], null, new Dictionary<string, string>(), null, null, RestartPolicy.Never);
        var (healthy, healthyT) = harness.Connect("healthy");
        var (slow, slowT) = harness.Connect("slow");
        await HubHarness.JoinAsync(healthy, healthyT, FleetChannel.Topic);
        await HubHarness.JoinAsync(slow, slowT, FleetChannel.Topic);

        await fleet.CreateAsync(Admin, "a1", spec, start: false);
        slowT.Backlog = 64 * 1024; // its socket stopped reading: the queue is at the budget
        for (var i = 2; i <= 5; i++)
        {
            await fleet.CreateAsync(Admin, $"a{i}", spec, start: false);
        }
        List<Frame> Events(InMemoryTransport t) => [.. t.Frames.Select(Frame.Parse).Skip(1)];
        Assert.Equal(["a1", "a2", "a3", "a4", "a5"], Events(healthyT).Select(f => f.Payload.GetProperty("name").GetString()));
        Assert.Equal(["a1"], Events(slowT).Select(f => f.Payload.GetProperty("name").GetString()));

        slowT.Backlog = 0; // it caught up: the next poll sends the snapshot
        await slowT.WaitForAsync(f => f.Select(Frame.Parse).Any(x => x.Event == "snapshot"), "a fresh snapshot");
        await fleet.CreateAsync(Admin, "a6", spec, start: false);
        await slowT.WaitForAsync(f => f.Count >= 4, "the next delta");

        var frames = Events(slowT);
        Assert.Equal(["instance_created", "snapshot", "instance_created"], frames.Select(f => f.Event));
        Assert.Equal(["a1", "a2", "a3", "a4", "a5"], frames[1].Payload.GetProperty("instances").EnumerateArray().Select(v => v.GetProperty("name").GetString()).Order());
        Assert.False(frames[1].Payload.GetProperty("include_archived").GetBoolean());
        Assert.Equal("a6", frames[2].Payload.GetProperty("name").GetString());
        Assert.Null(slowT.CloseCode);
        Assert.Equal(0, harness.Hub.Metrics.SlowConsumerDisconnects);
        Assert.Equal(1, harness.Hub.Metrics.StreamResyncs);
        Assert.Equal(6, Events(healthyT).Count);
        TryDelete(directory);
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
