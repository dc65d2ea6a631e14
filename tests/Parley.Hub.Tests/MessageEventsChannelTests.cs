using Parley.Hub.Auth;
using Parley.Hub.Inbox;

namespace Parley.Hub.Tests;

/// <summary><c>events:messages</c> over in-memory connections.</summary>
public sealed class MessageEventsChannelTests
{
    private static MessageEvent Event(string id) =>
        new(id, MessageEventKinds.Queued, "alice", "bob", "next", null, null, 0, ["alice", "bob"]);

    private static List<Frame> Frames(InMemoryTransport transport) => [.. transport.Frames.Select(Frame.Parse).Skip(1)];

    private static List<string> Ids(IEnumerable<Frame> events) => [.. events.Select(f => f.Payload.GetProperty("message_id").GetString()!)];

    [Fact]
    public async Task A_watcher_that_falls_behind_gets_a_fresh_snapshot_and_then_only_newer_events()
    {
        await using var harness = HubHarness.Start(o => o.StreamLagBytes = 8192);
        var events = new MessageEvents(recentEvents: 5);
        harness.Hub.Router.Add(new MessageEventsChannel(harness.Hub, events));
        var (healthy, healthyT) = harness.Connect("healthy", principal: new ConnectionPrincipal("bob", true, ["member"]));
        var (slow, slowT) = harness.Connect("slow", principal: new ConnectionPrincipal("alice", true, ["member"]));
        await HubHarness.JoinAsync(healthy, healthyT, MessageEventsChannel.TopicName);
        await HubHarness.JoinAsync(slow, slowT, MessageEventsChannel.TopicName);

        events.Publish(Event("m1"));
        slowT.Backlog = 8192;
        events.Publish(new[] { "m2", "m3", "m4", "m5", "m6", "m7" }.Select(Event));
        slowT.Backlog = 0;
        await slowT.WaitForAsync(f => f.Count(x => x.Contains("\"snapshot\"", StringComparison.Ordinal)) == 2, "the second snapshot");
        events.Publish(Event("m8"));
        await slowT.WaitForAsync(f => f.Any(x => x.Contains("m8", StringComparison.Ordinal)), "the next event");

        Assert.Equal(Enumerable.Range(1, 8).Select(i => $"m{i}"), Ids(Frames(healthyT).Skip(1)));
        var frames = Frames(slowT);
        Assert.Equal(["snapshot", "message_event", "snapshot", "message_event"], frames.Select(f => f.Event));
        Assert.Equal(["m1"], Ids([frames[1]]));
        Assert.Equal(["m3", "m4", "m5", "m6", "m7"], frames[2].Payload.GetProperty("recent_events").EnumerateArray().Select(e => e.GetProperty("message_id").GetString()));
        Assert.Equal(["m8"], Ids([frames[3]]));
        Assert.Null(slowT.CloseCode);
        Assert.Equal(1, harness.Hub.Metrics.StreamResyncs);
    }
}
