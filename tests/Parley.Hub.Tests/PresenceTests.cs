using System.Text.Json;
using Parley.Hub.Auth;
using Parley.Hub.Connections;
using Parley.Hub.Presence;
using Parley.Protocol;
using static Parley.Hub.Tests.HubHarness;

namespace Parley.Hub.Tests;

/// <summary>Presence on room topics (docs/protocol.md §Presence), with in-memory transports; diffs unbatched unless a test says otherwise.</summary>
public sealed class PresenceTests
{
    private const string Room = "room:ops";

    private static HubHarness StartUnbatched() => Start(o => o.PresenceBatchInterval = TimeSpan.Zero);

    private static ConnectionPrincipal User(string name) => new(name, true, ["member"]);

    private static List<Frame> Events(InMemoryTransport transport, string @event) =>
        [.. transport.Frames.Select(Frame.Parse).Where(f => f.Event == @event)];

    private static List<Frame> Diffs(InMemoryTransport transport) => Events(transport, TopicPresence.DiffEvent);

    private static JsonElement Metas(JsonElement presences, string key) => presences.GetProperty(key).GetProperty("metas");

    private static string RefOf(JsonElement presences, string key) => Metas(presences, key)[0].GetProperty("phx_ref").GetString()!;

    private static IEnumerable<string> Keys(JsonElement obj) => obj.EnumerateObject().Select(p => p.Name);

    private static async Task<Frame> ReplyAsync(InMemoryTransport transport, string @ref)
    {
        var frames = await transport.WaitForAsync(f => f.Any(x => Frame.Parse(x).IsReplyTo(@ref)), $"reply to {@ref}");
        return frames.Select(Frame.Parse).Single(f => f.IsReplyTo(@ref));
    }

    /// <summary>Leaves of <paramref name="phxRef"/> seen by <paramref name="transport"/>, over every diff.</summary>
    private static int LeavesOf(InMemoryTransport transport, string key, string phxRef) =>
        Diffs(transport).Sum(d => d.Payload.GetProperty("leaves").TryGetProperty(key, out var p)
            ? p.GetProperty("metas").EnumerateArray().Count(m => m.GetProperty("phx_ref").GetString() == phxRef)
            : 0);

    [Fact]
    public async Task A_join_gets_presence_state_with_its_join_ref_right_after_the_reply_then_diffs()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"), client: "agent");
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));

        await JoinAsync(alice, aliceT, Room, "1");
        var aliceFrames = aliceT.Frames.Select(Frame.Parse).ToList();
        Assert.Equal(["phx_reply", "presence_state", "presence_diff"], aliceFrames.Select(f => f.Event));
        Assert.Equal(("1", null), (aliceFrames[1].JoinRef, aliceFrames[1].Ref));
        Assert.Empty(Keys(aliceFrames[1].Payload));
        var ownJoin = aliceFrames[2];
        Assert.Equal((null, null), (ownJoin.JoinRef, ownJoin.Ref));
        var meta = Metas(ownJoin.Payload.GetProperty("joins"), "alice")[0];
        Assert.Equal("agent", meta.GetProperty("client").GetString());
        Assert.Equal("idle", meta.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, meta.GetProperty("summary").ValueKind);
        Assert.InRange(meta.GetProperty("online_at").GetInt64(), h.Hub.NowMs - 10_000, h.Hub.NowMs);
        Assert.False(meta.TryGetProperty("phx_ref_prev", out _));
        Assert.Empty(Keys(ownJoin.Payload.GetProperty("leaves")));

        await JoinAsync(bob, bobT, Room, "7");
        var state = Events(bobT, TopicPresence.StateEvent).Single();
        Assert.Equal("7", state.JoinRef);
        Assert.Equal(["alice"], Keys(state.Payload));
        Assert.Equal(RefOf(ownJoin.Payload.GetProperty("joins"), "alice"), RefOf(state.Payload, "alice"));
        Assert.Equal("agent", Metas(state.Payload, "alice")[0].GetProperty("client").GetString());
        Assert.Equal("service", Metas(Diffs(aliceT)[^1].Payload.GetProperty("joins"), "bob")[0].GetProperty("client").GetString());
    }

    [Fact]
    public async Task A_join_with_presence_false_is_neither_told_nor_tracked_and_a_bad_value_is_refused()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        var (shipper, shipperT) = h.Connect("s", presence: true, principal: User("shipper"));
        await JoinAsync(alice, aliceT, Room, "1");
        await JoinAsync(shipper, shipperT, Room, "1", "{\"presence\":false}");
        await JoinAsync(alice, aliceT, "room:other", "2");

        Assert.Empty(Events(shipperT, TopicPresence.StateEvent));
        var (carol, carolT) = h.Connect("c", presence: true, principal: User("carol"));
        await JoinAsync(carol, carolT, Room, "1"); // a diff the untracked reader must not hear
        Assert.Contains(Diffs(aliceT), d => Keys(d.Payload.GetProperty("joins")).Contains("carol"));
        Assert.Empty(Diffs(shipperT));
        Assert.DoesNotContain(Diffs(aliceT), d => Keys(d.Payload.GetProperty("joins")).Contains("shipper"));
        Assert.Equal(["alice", "carol"], h.Hub.Presence.Snapshot(Room).Single().Members.Select(m => m.Key));

        var before = shipperT.Frames.Count;
        await SendAsync(shipper, "9", "9", "room:third", PhoenixEvents.Join, "{\"presence\":\"no\"}");
        var refused = Frame.Parse(shipperT.Frames[before]);
        Assert.Equal(("error", "invalid_payload"), (refused.Status, refused.Reason));
    }

    [Fact]
    public async Task A_leave_is_a_diff_with_the_same_phx_ref_and_the_key_disappears()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));
        await JoinAsync(alice, aliceT, Room, "1");
        await JoinAsync(bob, bobT, Room, "1");
        var bobRef = RefOf(Diffs(aliceT)[^1].Payload.GetProperty("joins"), "bob");

        await SendAsync(bob, "1", "2", Room, PhoenixEvents.Leave);

        var leave = Diffs(aliceT)[^1];
        Assert.Empty(Keys(leave.Payload.GetProperty("joins")));
        Assert.Equal(bobRef, RefOf(leave.Payload.GetProperty("leaves"), "bob"));
        Assert.Equal(["alice"], h.Hub.Presence.Snapshot(Room).Single().Members.Select(m => m.Key));
    }

    [Fact]
    public async Task Two_connections_of_one_user_are_one_key_with_two_metas()
    {
        await using var h = StartUnbatched();
        var (a1, a1T) = h.Connect("a1", presence: true, principal: User("alice"));
        var (a2, a2T) = h.Connect("a2", presence: true, principal: User("alice"), client: "tui");
        await JoinAsync(a1, a1T, Room);
        await JoinAsync(a2, a2T, Room);

        var member = h.Hub.Presence.Snapshot(Room).Single().Members.Single();
        Assert.Equal("alice", member.Key);
        Assert.Equal(["service", "tui"], member.Metas.Select(m => m.Client).Order());
        Assert.NotEqual(member.Metas[0].Ref, member.Metas[1].Ref);
    }

    [Fact]
    public async Task An_update_reaches_every_topic_of_every_connection_of_the_user_as_leave_plus_join_with_phx_ref_prev()
    {
        await using var h = StartUnbatched();
        var (a1, a1T) = h.Connect("a1", presence: true, principal: User("alice"));
        var (a2, a2T) = h.Connect("a2", presence: true, principal: User("alice"));
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));
        await JoinAsync(bob, bobT, Room, "1");
        await JoinAsync(bob, bobT, "room:dev", "2");
        await JoinAsync(a1, a1T, Room, "1");
        await JoinAsync(a2, a2T, "room:dev", "1");
        await JoinAsync(a1, a1T, "hub:lobby", "9");
        var before = h.Hub.Presence.Snapshot().ToDictionary(s => s.Topic, s => s.Members.Single(m => m.Key == "alice").Metas.Single().Ref);

        await SendAsync(a1, "9", "10", "hub:lobby", PresenceTracker.UpdateEvent, """{"status":"working","summary":"fixing the build"}""");

        var reply = await ReplyAsync(a1T, "10");
        Assert.Equal("ok", reply.Status);
        Assert.Equal("working", reply.Response.GetProperty("status").GetString());
        Assert.Equal("fixing the build", reply.Response.GetProperty("summary").GetString());
        Assert.False(reply.Response.GetProperty("hidden").GetBoolean());
        foreach (var topic in new[] { Room, "room:dev" })
        {
            var diff = Diffs(bobT).Last(d => d.Topic == topic);
            Assert.Equal(before[topic], RefOf(diff.Payload.GetProperty("leaves"), "alice"));
            var joined = Metas(diff.Payload.GetProperty("joins"), "alice")[0];
            Assert.Equal(before[topic], joined.GetProperty("phx_ref_prev").GetString());
            Assert.NotEqual(before[topic], joined.GetProperty("phx_ref").GetString());
            Assert.Equal("working", joined.GetProperty("status").GetString());
            Assert.Equal("fixing the build", joined.GetProperty("summary").GetString());
        }

        // A later join of the same user starts with the user's status, not idle.
        var (a3, a3T) = h.Connect("a3", presence: true, principal: User("alice"));
        await JoinAsync(a3, a3T, "room:new");
        Assert.Equal("working", h.Hub.Presence.Snapshot("room:new").Single().Members.Single().Metas.Single().Status);

        // An empty summary clears it; an update that changes nothing sends nothing.
        await SendAsync(a1, "9", "11", "hub:lobby", PresenceTracker.UpdateEvent, """{"summary":""}""");
        Assert.Equal(JsonValueKind.Null, (await ReplyAsync(a1T, "11")).Response.GetProperty("summary").ValueKind);
        var diffs = Diffs(bobT).Count;
        await SendAsync(a1, "9", "12", "hub:lobby", PresenceTracker.UpdateEvent, """{"status":"working"}""");
        Assert.Equal("ok", (await ReplyAsync(a1T, "12")).Status);
        Assert.Equal(diffs, Diffs(bobT).Count);
    }

    [Theory]
    [InlineData("""{"status":"busy"}""", ErrorReasons.InvalidStatus)]
    [InlineData("""{"status":3}""", ErrorReasons.InvalidStatus)]
    [InlineData("""{"summary":5}""", ErrorReasons.InvalidPayload)]
    [InlineData("""{"hidden":"yes"}""", ErrorReasons.InvalidPayload)]
    [InlineData("""[]""", ErrorReasons.InvalidPayload)]
    public async Task Bad_updates_are_refused_with_a_reason_and_change_nothing(string payload, string reason)
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        await JoinAsync(alice, aliceT, Room, "1");
        await JoinAsync(alice, aliceT, "hub:lobby", "2");
        var diffs = Diffs(aliceT).Count;

        await SendAsync(alice, "2", "3", "hub:lobby", PresenceTracker.UpdateEvent, payload);

        var reply = await ReplyAsync(aliceT, "3");
        Assert.Equal(("error", reason), (reply.Status, reply.Reason));
        Assert.True(reply.Response.TryGetProperty("detail", out _));
        Assert.Equal(diffs, Diffs(aliceT).Count);
        Assert.Equal("idle", h.Hub.Presence.Snapshot(Room).Single().Members.Single().Metas.Single().Status);
    }

    [Fact]
    public async Task A_summary_is_limited_to_200_characters()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        await JoinAsync(alice, aliceT, "hub:lobby", "1");

        await SendAsync(alice, "1", "2", "hub:lobby", PresenceTracker.UpdateEvent, JsonSerializer.Serialize(new { summary = new string('x', 201) }));
        await SendAsync(alice, "1", "3", "hub:lobby", PresenceTracker.UpdateEvent, JsonSerializer.Serialize(new { summary = new string('y', 200) }));

        var tooLong = await ReplyAsync(aliceT, "2");
        Assert.Equal(("error", ErrorReasons.TooLarge), (tooLong.Status, tooLong.Reason));
        Assert.Contains("200", tooLong.Response.GetProperty("detail").GetString());
        Assert.Equal(new string('y', 200), (await ReplyAsync(aliceT, "3")).Response.GetProperty("summary").GetString());
    }

    [Fact]
    public async Task A_hidden_user_leaves_presence_everywhere_but_still_gets_state_and_messages()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));
        await JoinAsync(bob, bobT, Room, "1");
        await JoinAsync(alice, aliceT, Room, "1");
        await JoinAsync(alice, aliceT, "hub:lobby", "2");
        var aliceRef = RefOf(Diffs(bobT)[^1].Payload.GetProperty("joins"), "alice");

        await SendAsync(alice, "2", "3", "hub:lobby", PresenceTracker.UpdateEvent, """{"hidden":true}""");
        Assert.True((await ReplyAsync(aliceT, "3")).Response.GetProperty("hidden").GetBoolean());
        Assert.Equal(aliceRef, RefOf(Diffs(bobT)[^1].Payload.GetProperty("leaves"), "alice"));
        Assert.Equal(["bob"], h.Hub.Presence.Snapshot(Room).Single().Members.Select(m => m.Key));

        // Joining elsewhere while hidden: alice gets the state, nobody sees her.
        await JoinAsync(bob, bobT, "room:dev", "4");
        var diffsBefore = Diffs(bobT).Count;
        await JoinAsync(alice, aliceT, "room:dev", "5");
        Assert.Equal(["bob"], Keys(Events(aliceT, TopicPresence.StateEvent).Single(f => f.JoinRef == "5").Payload));
        Assert.Equal(diffsBefore, Diffs(bobT).Count);

        // A status change while hidden shows nothing either.
        await SendAsync(alice, "2", "6", "hub:lobby", PresenceTracker.UpdateEvent, """{"status":"dnd"}""");
        Assert.Equal(diffsBefore, Diffs(bobT).Count);

        // She still receives messages.
        await SendAsync(bob, "1", "7", Room, "msg", """{"body":"hi"}""");
        await aliceT.WaitForAsync(f => f.Any(x => Frame.Parse(x).Event == "msg"), "the msg broadcast");

        // Visible again: a fresh join on each topic, with the status set meanwhile.
        await SendAsync(alice, "2", "8", "hub:lobby", PresenceTracker.UpdateEvent, """{"hidden":false}""");
        foreach (var topic in new[] { Room, "room:dev" })
        {
            var meta = Metas(Diffs(bobT).Last(d => d.Topic == topic).Payload.GetProperty("joins"), "alice")[0];
            Assert.Equal("dnd", meta.GetProperty("status").GetString());
            Assert.NotEqual(aliceRef, meta.GetProperty("phx_ref").GetString());
        }
    }

    [Fact]
    public async Task A_rejoin_gets_a_fresh_presence_state_and_a_new_phx_ref_and_the_old_meta_leaves_once()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));
        await JoinAsync(bob, bobT, Room, "1");
        await JoinAsync(alice, aliceT, Room, "1");
        var first = RefOf(Diffs(bobT)[^1].Payload.GetProperty("joins"), "alice");

        await SendAsync(alice, "5", "5", Room, PhoenixEvents.Join);

        Assert.Equal(["phx_close", "phx_reply", "presence_state"], aliceT.Frames.Select(Frame.Parse).SkipWhile(f => f.Event != "phx_close").Select(f => f.Event).Take(3));
        Assert.Equal("ok", (await ReplyAsync(aliceT, "5")).Status);
        var states = Events(aliceT, TopicPresence.StateEvent);
        Assert.Equal(["1", "5"], states.Select(s => s.JoinRef));
        Assert.Equal(["bob"], Keys(states[1].Payload)); // her own new meta follows as a join, like anyone's
        Assert.Equal(1, LeavesOf(bobT, "alice", first));
        var second = h.Hub.Presence.Snapshot(Room).Single().Members.Single(m => m.Key == "alice").Metas.Single().Ref;
        Assert.NotEqual(first, second);
    }

    public enum ClosePath
    {
        Leave,
        ServerRemoval,
        SlowConsumer,
        IdleClose,
        Abort,
        ServerRemovalThenAbort,
    }

    [Theory]
    [InlineData(ClosePath.Leave)]
    [InlineData(ClosePath.ServerRemoval)]
    [InlineData(ClosePath.SlowConsumer)]
    [InlineData(ClosePath.IdleClose)]
    [InlineData(ClosePath.Abort)]
    [InlineData(ClosePath.ServerRemovalThenAbort)]
    public async Task Every_close_path_removes_the_meta_and_broadcasts_the_leave_exactly_once(ClosePath path)
    {
        await using var h = Start(o =>
        {
            o.PresenceBatchInterval = TimeSpan.Zero;
            o.IdleTimeout = TimeSpan.FromMilliseconds(300);
        });
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));
        var (alice, aliceT) = h.Connect("a", byteLimit: path == ClosePath.SlowConsumer ? 1200 : int.MaxValue, presence: true, principal: User("alice"));
        await JoinAsync(bob, bobT, Room, "1");
        await JoinAsync(alice, aliceT, Room, "1");
        var aliceRef = RefOf(Diffs(bobT)[^1].Payload.GetProperty("joins"), "alice");

        switch (path)
        {
            case ClosePath.Leave:
                await SendAsync(alice, "1", "2", Room, PhoenixEvents.Leave);
                alice.OnTransportClosed();
                break;
            case ClosePath.ServerRemoval: // a kick from a private channel, a rename, a delete
                Assert.True(alice.RemoveSubscription(Room, sendClose: true));
                break;
            case ClosePath.SlowConsumer:
                for (var i = 0; i < 50 && !aliceT.IsClosing; i++)
                {
                    await SendAsync(bob, "1", $"m{i}", Room, "msg", JsonSerializer.Serialize(new { body = new string('z', 100) }));
                    await Task.Delay(5);
                }
                await aliceT.WaitForAsync(_ => aliceT.CloseCode == CloseStatus.SlowConsumer, "the 4008 close");
                alice.OnTransportClosed(); // what the transport does once the socket is gone
                break;
            case ClosePath.IdleClose:
                for (var deadline = DateTime.UtcNow + WaitLimit; aliceT.CloseCode != CloseStatus.IdleTimeout;)
                {
                    Assert.True(DateTime.UtcNow < deadline, "alice was never closed for idleness");
                    bob.Touch(); // bob stays active, so he is there to see alice go
                    await Task.Delay(20);
                }
                alice.OnTransportClosed();
                break;
            case ClosePath.Abort:
                alice.OnTransportClosed();
                break;
            case ClosePath.ServerRemovalThenAbort:
                alice.RemoveSubscription(Room, sendClose: true);
                alice.OnTransportClosed();
                alice.RemoveSubscription(Room, sendClose: true);
                break;
        }

        Assert.Equal(1, LeavesOf(bobT, "alice", aliceRef));
        Assert.Equal(["bob"], h.Hub.Presence.Snapshot(Room).Single().Members.Select(m => m.Key));
        if (path is not (ClosePath.ServerRemoval))
        {
            Assert.Equal(1, h.Hub.Presence.UserCount); // alice's settings went with her last connection
        }
    }

    [Fact]
    public async Task A_batched_join_then_leave_leaves_every_subscriber_with_the_right_state()
    {
        await using var h = Start(o => o.PresenceBatchInterval = TimeSpan.FromMilliseconds(300));
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        var (carol, carolT) = h.Connect("c", presence: true, principal: User("carol"));
        await JoinAsync(bob, bobT, Room, "1");
        await bobT.WaitForAsync(f => Diffs(bobT).Count == 1, "bob's own join");

        await JoinAsync(alice, aliceT, Room, "1");
        await JoinAsync(carol, carolT, Room, "1"); // joins between alice's join and leave, within one batch
        await SendAsync(alice, "1", "2", Room, PhoenixEvents.Leave);

        var diffs = await bobT.WaitForAsync(_ => Diffs(bobT).Count == 2, "one batched diff");
        var batch = Diffs(bobT)[1];
        Assert.Equal(["alice", "carol"], Keys(batch.Payload.GetProperty("joins")).Order());
        Assert.Equal(["alice"], Keys(batch.Payload.GetProperty("leaves")));
        Assert.Equal(["bob"], Keys(Events(carolT, TopicPresence.StateEvent).Single().Payload));
        Assert.Equal(batch.Raw, Diffs(carolT).Single().Raw);

        // Applied the way phoenix.js does (joins, then leaves), everyone ends with bob and carol.
        var state = new HashSet<string>(["bob"]);
        foreach (var key in Keys(batch.Payload.GetProperty("joins")))
        {
            state.Add(key);
        }
        foreach (var key in Keys(batch.Payload.GetProperty("leaves")))
        {
            state.Remove(key);
        }
        Assert.Equal(["bob", "carol"], state.Order());
        Assert.Equal(["bob", "carol"], h.Hub.Presence.Snapshot(Room).Single().Members.Select(m => m.Key));
    }

    [Fact]
    public async Task A_diff_is_encoded_once_for_every_subscriber()
    {
        await using var h = StartUnbatched();
        var first = new RecordingTransport();
        var second = new RecordingTransport();
        await SendAsync(h.Hub.Attach("w1", User("w1"), first), "1", "1", Room, PhoenixEvents.Join);
        await SendAsync(h.Hub.Attach("w2", User("w2"), second), "1", "1", Room, PhoenixEvents.Join);
        var (late, lateT) = h.Connect("late", presence: true, principal: User("late"));

        await JoinAsync(late, lateT, Room);

        static byte[] JoinOfLate(RecordingTransport t) =>
            t.Sent.Single(f => InMemoryTransport.Decode(f) is var text && text.Contains("presence_diff", StringComparison.Ordinal) && text.Contains("\"late\"", StringComparison.Ordinal));
        Assert.Same(JoinOfLate(first), JoinOfLate(second));
    }

    [Fact]
    public async Task Client_kind_comes_from_the_join_param_over_the_connection_and_a_bad_one_is_refused()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"), client: "cli");
        await JoinAsync(alice, aliceT, "room:one");
        await JoinAsync(alice, aliceT, "room:two", "2", """{"client":"agent"}""");
        await SendAsync(alice, "3", "3", "room:three", PhoenixEvents.Join, """{"client":"robot"}""");

        Assert.Equal("cli", h.Hub.Presence.Snapshot("room:one").Single().Members.Single().Metas.Single().Client);
        Assert.Equal("agent", h.Hub.Presence.Snapshot("room:two").Single().Members.Single().Metas.Single().Client);
        var refused = await ReplyAsync(aliceT, "3");
        Assert.Equal(("error", ErrorReasons.InvalidClient), (refused.Status, refused.Reason));
        Assert.Empty(h.Hub.Presence.Snapshot("room:three").Single().Members);
    }

    [Fact]
    public async Task Presence_adds_nothing_to_msg_fan_out()
    {
        await using var h = StartUnbatched();
        var (alice, aliceT) = h.Connect("a", presence: true, principal: User("alice"));
        var (bob, bobT) = h.Connect("b", presence: true, principal: User("bob"));
        await JoinAsync(alice, aliceT, Room);
        await JoinAsync(bob, bobT, Room);
        var before = bobT.Frames.Count;

        await SendAsync(alice, "1", "2", Room, "msg", """{"body":"hi"}""");
        await bobT.WaitForCountAsync(before + 1);
        await Task.Delay(50);

        Assert.Equal(["msg"], bobT.Frames.Skip(before).Select(f => Frame.Parse(f).Event));
    }

    /// <summary>Keeps the frame arrays it is given, to check that subscribers share one encoding.</summary>
    private sealed class RecordingTransport : IConnectionTransport
    {
        private readonly List<byte[]> _sent = [];

        public IReadOnlyList<byte[]> Sent
        {
            get
            {
                lock (_sent)
                {
                    return [.. _sent];
                }
            }
        }

        public bool IsClosing => false;

        public bool TrySend(byte[] frame)
        {
            lock (_sent)
            {
                _sent.Add(frame);
            }
            return true;
        }

        public ValueTask<bool> SendAsync(byte[] frame, CancellationToken cancellationToken) => ValueTask.FromResult(TrySend(frame));

        public void Close(ushort code, string reason)
        {
        }
    }
}
