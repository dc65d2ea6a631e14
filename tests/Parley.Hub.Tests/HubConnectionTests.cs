using System.Text.Json;
using Parley.Hub.Auth;
using Parley.Hub.History;
using Parley.Protocol;
using static Parley.Hub.Tests.HubHarness;

namespace Parley.Hub.Tests;

/// <summary><see cref="Connections.HubConnection"/> through <see cref="ParleyHub"/>, with in-memory transports and store.</summary>
public sealed class HubConnectionTests
{
    private const string Lobby = "room:lobby";

    private static Frame Last(InMemoryTransport transport) => Frame.Parse(transport.Frames[^1]);

    private static async Task<Frame> ReplyAsync(InMemoryTransport transport, string @ref)
    {
        var frames = await transport.WaitForAsync(f => f.Any(x => Frame.Parse(x).IsReplyTo(@ref)), $"reply to {@ref}");
        return frames.Select(Frame.Parse).Single(f => f.IsReplyTo(@ref));
    }

    // ---- heartbeat and routing ------------------------------------------------------------------

    [Fact]
    public async Task Heartbeat_gets_an_ok_reply()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();

        await SendAsync(connection, null, "12", "phoenix", "heartbeat");

        Assert.Equal(["""[null,"12","phoenix","phx_reply",{"status":"ok","response":{}}]"""], transport.Frames);
    }

    [Fact]
    public async Task Phoenix_topic_takes_only_heartbeats()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();

        await SendAsync(connection, null, "2", "phoenix", "phx_join");

        var reply = Last(transport);
        Assert.Equal(("phoenix", "2", "error"), (reply.Topic, reply.Ref, reply.Status));
        Assert.Equal(ErrorReasons.UnknownEvent, reply.Reason);
    }

    [Fact]
    public async Task Join_of_a_topic_without_handler_is_unmatched_with_null_join_ref()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", "lobby:x", PhoenixEvents.Join);

        Assert.Equal(["""[null,"1","lobby:x","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"""], transport.Frames);
        Assert.Equal(0, connection.JoinedCount);
    }

    [Theory]
    [InlineData("room:")]
    [InlineData("room:bad name")]
    [InlineData("room:a/b")]
    public async Task Join_of_an_invalid_room_name_is_invalid_topic(string topic)
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", topic, PhoenixEvents.Join);

        var reply = Last(transport);
        Assert.Equal(("1", "1", "error", ErrorReasons.InvalidTopic), (reply.JoinRef, reply.Ref, reply.Status, reply.Reason));
        Assert.Equal(0, connection.JoinedCount);
    }

    // ---- join -----------------------------------------------------------------------------------

    [Fact]
    public async Task Join_replies_ok_with_offset_and_epoch()
    {
        await using var h = Start(store: new InMemoryHistoryStore("e-test"));
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "3", "3", Lobby, PhoenixEvents.Join);

        Assert.Equal(["""["3","3","room:lobby","phx_reply",{"status":"ok","response":{"offset":0,"epoch":"e-test"}}]"""], transport.Frames);
        Assert.Equal(1, connection.JoinedCount);
        Assert.True(h.Hub.Topics.TryGet(Lobby, out var topic));
        Assert.Equal(1, topic!.SubscriberCount);
        Assert.Equal(1, h.Hub.Metrics.Joins);
    }

    [Fact]
    public async Task Join_offset_is_the_store_head()
    {
        await using var h = Start();
        await h.SeedAsync(Lobby, 3, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join);

        var reply = Last(transport);
        Assert.Equal(3, reply.Response.GetProperty("offset").GetInt64());
        Assert.False(reply.Response.TryGetProperty("recovered", out _));
        Assert.Single(transport.Frames); // no replay without since
    }

    [Fact]
    public async Task Join_denied_by_the_authorizer_replies_its_reason()
    {
        await using var h = Start(joinAuthorizer: new DenyTopic("room:secret"));
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", "room:secret", PhoenixEvents.Join);
        await SendAsync(connection, "2", "2", "room:open", PhoenixEvents.Join);

        var frames = transport.Frames.Select(Frame.Parse).ToList();
        Assert.Equal(("1", "error", ErrorReasons.Unauthorized), (frames[0].JoinRef, frames[0].Status, frames[0].Reason));
        Assert.Equal("ok", frames[1].Status);
        Assert.Equal(1, connection.JoinedCount);
    }

    [Fact]
    public async Task Join_that_throws_replies_join_crashed_and_leaves_no_subscriber()
    {
        var store = new InMemoryHistoryStore { FailPosition = new InvalidOperationException("store down") };
        await using var h = Start(store: store);
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "4", "4", Lobby, PhoenixEvents.Join);

        Assert.Equal(["""["4","4","room:lobby","phx_reply",{"status":"error","response":{"reason":"join crashed"}}]"""], transport.Frames);
        Assert.Equal(0, connection.JoinedCount);
        Assert.True(!h.Hub.Topics.TryGet(Lobby, out var topic) || topic!.SubscriberCount == 0);
    }

    [Fact]
    public async Task Too_many_topics()
    {
        await using var h = Start(o => o.MaxTopicsPerConnection = 2);
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, "room:a", "1");
        await JoinAsync(connection, transport, "room:b", "2");

        await SendAsync(connection, "3", "3", "room:c", PhoenixEvents.Join);

        var reply = Last(transport);
        Assert.Equal(("3", "3", "room:c", "error"), (reply.JoinRef, reply.Ref, reply.Topic, reply.Status));
        Assert.Equal(ErrorReasons.TooManyTopics, reply.Reason);
        Assert.Equal(2, connection.JoinedCount);
        Assert.False(h.Hub.Topics.TryGet("room:c", out var c) && c!.SubscriberCount > 0);

        // Rejoining a topic already joined is not an extra topic.
        await SendAsync(connection, "4", "4", "room:a", PhoenixEvents.Join);
        Assert.Equal("ok", Last(transport).Status);

        // After a leave there is room again.
        await SendAsync(connection, "2", "5", "room:b", PhoenixEvents.Leave);
        await JoinAsync(connection, transport, "room:c", "6");
        Assert.Equal(2, connection.JoinedCount);
    }

    [Fact]
    public async Task Duplicate_join_closes_the_old_join_ref_first()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby, "1");

        await SendAsync(connection, "5", "5", Lobby, PhoenixEvents.Join);

        Assert.Equal("""["1","1","room:lobby","phx_close",{}]""", transport.Frames[1]);
        var reply = Frame.Parse(transport.Frames[2]);
        Assert.Equal(("5", "5", "ok"), (reply.JoinRef, reply.Ref, reply.Status));
        Assert.Equal(3, transport.Frames.Count);
        Assert.Equal(1, connection.JoinedCount);
        Assert.True(h.Hub.Topics.TryGet(Lobby, out var topic));
        Assert.Equal(1, topic!.SubscriberCount);

        // Live messages arrive once, and the new join_ref is the one the channel answers to.
        await SendAsync(connection, "5", "6", Lobby, "msg", """{"body":"once"}""");
        var frames = await transport.WaitForAsync(f => f.Any(x => x.StartsWith("[null,null,", StringComparison.Ordinal)), "broadcast");
        await Task.Delay(50);
        Assert.Single(transport.Frames, f => f.StartsWith("[null,null,", StringComparison.Ordinal));
        Assert.Equal("5", Frame.Parse(frames.Single(f => Frame.Parse(f).IsReplyTo("6"))).JoinRef);
    }

    // ---- msg ------------------------------------------------------------------------------------

    [Fact]
    public async Task Msg_is_confirmed_then_broadcast_to_every_subscriber()
    {
        await using var h = Start();
        var (sender, senderTransport) = h.Connect("c1");
        var (other, otherTransport) = h.Connect("c2");
        await JoinAsync(sender, senderTransport, Lobby, "1");
        await JoinAsync(other, otherTransport, Lobby, "9");

        await SendAsync(sender, "1", "2", Lobby, "msg", """{"body":"hi \u00e9"}""");

        var frames = await senderTransport.WaitForCountAsync(3);
        var reply = Frame.Parse(frames[1]);
        Assert.Equal(("1", "2", Lobby, "ok"), (reply.JoinRef, reply.Ref, reply.Topic, reply.Status));
        var id = reply.Response.GetProperty("id").GetString();
        Assert.False(string.IsNullOrEmpty(id));
        Assert.Equal(1, reply.Response.GetProperty("offset").GetInt64());
        var ts = reply.Response.GetProperty("ts").GetInt64();
        Assert.InRange(ts, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds());
        Assert.False(reply.Response.TryGetProperty("duplicate", out _));

        var expectedBroadcast = $$"""[null,null,"room:lobby","msg",{"id":"{{id}}","offset":1,"ts":{{ts}},"from":"anon-c1","body":"hi é"}]""";
        Assert.Equal(expectedBroadcast, frames[2]); // reply before broadcast, on the sender's ordered queue
        var otherFrames = await otherTransport.WaitForCountAsync(2);
        Assert.Equal(expectedBroadcast, otherFrames[1]);
        await Task.Delay(50);
        Assert.Equal(2, otherTransport.Frames.Count); // no reply for the non-sender

        var stored = await h.Store.ReadRangeAsync(Lobby, 0, 10, 10).AsTask().WaitAsync(WaitLimit);
        Assert.Equal(("anon-c1", "hi é", 1L), (stored.Single().From, stored.Single().Body, stored.Single().Offset));
        Assert.Equal(1, h.Hub.Metrics.MessagesStored);
    }

    [Fact]
    public async Task Offsets_increase_and_broadcasts_follow_offset_order()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        for (var i = 0; i < 20; i++)
        {
            await SendAsync(connection, "1", $"r{i}", Lobby, "msg", $$"""{"body":"n{{i}}"}""");
        }

        var frames = await transport.WaitForAsync(f => f.Count(x => x.StartsWith("[null,null,", StringComparison.Ordinal)) == 20, "20 broadcasts");
        var broadcastOffsets = frames.Select(Frame.Parse).Where(f => f.JoinRef is null && f.Event == "msg").Select(f => f.Payload.GetProperty("offset").GetInt64());
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), broadcastOffsets);
        var replyOffsets = frames.Select(Frame.Parse).Where(f => f.Event == PhoenixEvents.Reply && f.Ref!.StartsWith('r')).Select(f => (f.Ref, f.Response.GetProperty("offset").GetInt64()));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => ((string?)$"r{i}", (long)i + 1)), replyOffsets);
    }

    [Fact]
    public async Task Msg_with_client_id_and_meta_and_a_duplicate()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "msg", """{"body":"x","client_id":"k-1","meta":{"reply_to":"m0","n":[1,2]}}""");
        var first = await ReplyAsync(transport, "2");
        await SendAsync(connection, "1", "3", Lobby, "msg", """{"body":"changed","client_id":"k-1"}""");
        var repeat = await ReplyAsync(transport, "3");

        Assert.Equal("ok", repeat.Status);
        Assert.True(repeat.Response.GetProperty("duplicate").GetBoolean());
        Assert.Equal(first.Response.GetProperty("id").GetString(), repeat.Response.GetProperty("id").GetString());
        Assert.Equal(first.Response.GetProperty("offset").GetInt64(), repeat.Response.GetProperty("offset").GetInt64());
        await Task.Delay(50);
        var broadcasts = transport.Frames.Where(f => f.StartsWith("[null,null,", StringComparison.Ordinal)).Select(Frame.Parse).ToList();
        var broadcast = Assert.Single(broadcasts);
        Assert.Equal("k-1", broadcast.Payload.GetProperty("client_id").GetString());
        Assert.Equal("""{"reply_to":"m0","n":[1,2]}""", broadcast.Payload.GetProperty("meta").GetRawText());
        Assert.Equal("x", broadcast.Payload.GetProperty("body").GetString());
    }

    [Fact]
    public async Task Unknown_event_on_a_joined_room()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "5", Lobby, "typing", """{"on":true}""");

        var reply = Last(transport);
        Assert.Equal(("1", "5", Lobby, "error"), (reply.JoinRef, reply.Ref, reply.Topic, reply.Status));
        Assert.Equal(ErrorReasons.UnknownEvent, reply.Reason);
        Assert.Contains("typing", reply.Response.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_to_a_topic_not_joined_is_unmatched_with_null_join_ref()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "5", "room:other", "msg", """{"body":"x"}""");

        Assert.Equal("""[null,"5","room:other","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]""", transport.Frames[^1]);
        Assert.Equal(0, h.Store.Batches);
    }

    [Fact]
    public async Task Body_over_the_limit_is_too_large()
    {
        await using var h = Start(o => o.MaxBodyBytes = 10);
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "msg", """{"body":"12345678901"}""");
        Assert.Equal(("error", ErrorReasons.TooLarge), (Last(transport).Status, Last(transport).Reason));

        // Bytes, not characters: 6 × 'é' is 12 bytes.
        await SendAsync(connection, "1", "3", Lobby, "msg", """{"body":"éééééé"}""");
        Assert.Equal(("3", ErrorReasons.TooLarge), (Last(transport).Ref, Last(transport).Reason));

        await SendAsync(connection, "1", "4", Lobby, "msg", """{"body":"1234567890"}""");
        Assert.Equal("ok", (await ReplyAsync(transport, "4")).Status);
    }

    [Fact]
    public async Task Meta_over_the_limit_is_too_large()
    {
        await using var h = Start(o => o.MaxMetaBytes = 16);
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "msg", """{"body":"x","meta":{"long":"0123456789"}}""");

        Assert.Equal(("2", "error", ErrorReasons.TooLarge), (Last(transport).Ref, Last(transport).Status, Last(transport).Reason));
    }

    [Theory]
    [InlineData("[1]")]
    [InlineData("\"body\"")]
    [InlineData("{}")]
    [InlineData("""{"body":5}""")]
    [InlineData("""{"body":null}""")]
    [InlineData("""{"body":"x","client_id":7}""")]
    [InlineData("""{"body":"x","client_id":""}""")]
    [InlineData("""{"body":"x","meta":"m"}""")]
    [InlineData("""{"body":"x","meta":[1]}""")]
    public async Task Msg_with_bad_payload_types_is_invalid_payload(string payload)
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "msg", payload);

        var reply = Last(transport);
        Assert.Equal(("1", "2", "error", ErrorReasons.InvalidPayload), (reply.JoinRef, reply.Ref, reply.Status, reply.Reason));
        Assert.False(string.IsNullOrEmpty(reply.Response.GetProperty("detail").GetString()));
        Assert.Equal(0, h.Store.Batches);
    }

    [Fact]
    public async Task Client_id_over_the_limit_is_invalid_payload()
    {
        await using var h = Start(o => o.MaxClientIdLength = 4);
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "msg", """{"body":"x","client_id":"12345"}""");

        Assert.Equal(ErrorReasons.InvalidPayload, Last(transport).Reason);
    }

    [Theory]
    [InlineData("[1]")]
    [InlineData("""{"since":"x"}""")]
    [InlineData("""{"since":-1}""")]
    [InlineData("""{"since":1.5}""")]
    [InlineData("""{"since":3,"epoch":5}""")]
    [InlineData("""{"since":{"epoch":"e"}}""")]
    [InlineData("""{"since":{"offset":1,"epoch":true}}""")]
    [InlineData("""{"since_ms":"yesterday"}""")]
    public async Task Join_with_bad_params_is_invalid_payload(string payload)
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, payload);

        var reply = Last(transport);
        Assert.Equal(("1", "1", "error", ErrorReasons.InvalidPayload), (reply.JoinRef, reply.Ref, reply.Status, reply.Reason));
        Assert.Equal(0, connection.JoinedCount);
    }

    [Fact]
    public async Task Store_failure_replies_internal_error_and_the_next_push_works()
    {
        var store = new InMemoryHistoryStore { FailNextAppend = new IOException("disk full") };
        await using var h = Start(store: store);
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "msg", """{"body":"lost"}""");
        var failed = await ReplyAsync(transport, "2");
        await SendAsync(connection, "1", "3", Lobby, "msg", """{"body":"kept"}""");
        var ok = await ReplyAsync(transport, "3");

        Assert.Equal(("error", ErrorReasons.InternalError), (failed.Status, failed.Reason));
        Assert.Equal(1, ok.Response.GetProperty("offset").GetInt64());
    }

    [Fact]
    public async Task History_pages_back_newest_first()
    {
        await using var h = Start();
        await h.SeedAsync(Lobby, 5, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "history", """{"limit":2}""");
        var page = Last(transport);
        await SendAsync(connection, "1", "3", Lobby, "history", """{"before":2}""");
        var rest = Last(transport);
        await SendAsync(connection, "1", "4", Lobby, "history", """{"limit":0}""");

        Assert.Equal([5L, 4L], page.Response.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("offset").GetInt64()));
        Assert.True(page.Response.GetProperty("more").GetBoolean());
        Assert.Equal([1L], rest.Response.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("offset").GetInt64()));
        Assert.False(rest.Response.GetProperty("more").GetBoolean());
        Assert.Equal(ErrorReasons.InvalidPayload, Last(transport).Reason);
    }

    // ---- rate limit -----------------------------------------------------------------------------

    [Fact]
    public async Task Rate_limit_rejects_with_retry_after_then_closes_with_1008()
    {
        await using var h = Start(o =>
        {
            o.PushesPerSecond = 1;
            o.PushBurst = 2;
            o.RateLimitRejectionsBeforeClose = 2;
        });
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);                        // push 1
        await SendAsync(connection, "1", "2", Lobby, "msg", """{"body":"a"}"""); // push 2
        await SendAsync(connection, "1", "3", Lobby, "msg", """{"body":"b"}"""); // push 3: over the limit

        var limited = await ReplyAsync(transport, "3");
        Assert.Equal(("1", Lobby, "error", ErrorReasons.RateLimited), (limited.JoinRef, limited.Topic, limited.Status, limited.Reason));
        Assert.InRange(limited.Response.GetProperty("retry_after_ms").GetInt32(), 1, 1000);
        Assert.Equal("ok", (await ReplyAsync(transport, "2")).Status);

        // Heartbeats are not rate limited.
        await SendAsync(connection, null, "hb", "phoenix", "heartbeat");
        Assert.Equal("ok", (await ReplyAsync(transport, "hb")).Status);

        await SendAsync(connection, "1", "4", Lobby, "msg", """{"body":"c"}"""); // second rejection: still tolerated
        Assert.Equal(ErrorReasons.RateLimited, (await ReplyAsync(transport, "4")).Reason);
        Assert.False(transport.IsClosing);

        await SendAsync(connection, "1", "5", Lobby, "msg", """{"body":"d"}"""); // one too many
        Assert.True(transport.IsClosing);
        Assert.Equal(CloseStatus.PolicyViolation, transport.CloseCode);
        Assert.DoesNotContain(transport.Frames.Select(Frame.Parse), f => f.IsReplyTo("5"));
        Assert.Equal(3, h.Hub.Metrics.RateLimitedPushes);
        Assert.Equal(1, h.Hub.Metrics.RateLimitCloses);
        Assert.Equal(1, (await h.Store.GetPositionAsync(Lobby).AsTask().WaitAsync(WaitLimit)).Head);
    }

    // ---- leave ----------------------------------------------------------------------------------

    [Fact]
    public async Task Leave_replies_ok_then_phx_close_with_the_join_ref()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby, "3");

        await SendAsync(connection, "3", "9", Lobby, PhoenixEvents.Leave);

        Assert.Equal(
            [
                """["3","9","room:lobby","phx_reply",{"status":"ok","response":{}}]""",
                """["3","3","room:lobby","phx_close",{}]""",
            ],
            transport.Frames.Skip(1));
        Assert.Equal(0, connection.JoinedCount);
        Assert.False(h.Hub.Topics.TryGet(Lobby, out _)); // the last subscriber left: the topic was evicted

        await SendAsync(connection, "3", "10", Lobby, "msg", """{"body":"x"}""");
        Assert.Equal(ErrorReasons.UnmatchedTopic, Last(transport).Reason);
    }

    [Fact]
    public async Task Leave_of_a_topic_not_joined_still_replies_ok()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "3", "4", Lobby, PhoenixEvents.Leave);

        Assert.Equal(["""["3","4","room:lobby","phx_reply",{"status":"ok","response":{}}]"""], transport.Frames);
    }

    [Fact]
    public async Task Leave_with_a_stale_join_ref_gets_no_reply_and_keeps_the_channel()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby, "7");

        await SendAsync(connection, "2", "8", Lobby, PhoenixEvents.Leave);

        Assert.Single(transport.Frames);
        Assert.Equal(1, connection.JoinedCount);
    }

    [Fact]
    public async Task Transport_close_leaves_every_topic_and_detaches()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, "room:a", "1");
        await JoinAsync(connection, transport, "room:b", "2");
        Assert.Equal(1, h.Hub.ConnectionCount);

        connection.OnTransportClosed();

        Assert.Equal(0, connection.JoinedCount);
        Assert.Equal(0, h.Hub.ConnectionCount);
        Assert.False(h.Hub.Topics.TryGet("room:a", out _)); // the last subscriber left: the topic was evicted
        Assert.False(h.Hub.Topics.TryGet("room:b", out _)); // the last subscriber left: the topic was evicted
    }

    // ---- recovery -------------------------------------------------------------------------------

    private static string Stored(string joinRef, string topic, long offset, long ts) =>
        $$"""["{{joinRef}}",null,"{{topic}}","msg",{"id":"m{{offset}}","offset":{{offset}},"ts":{{ts}},"from":"alice","body":"b{{offset}}"}]""";

    [Fact]
    public async Task Join_with_since_replays_missed_messages_with_the_join_ref_before_live_ones()
    {
        await using var h = Start(store: new InMemoryHistoryStore("e7"));
        var ts = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync("room:build", 5, ts);
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "7", "7", "room:build", PhoenixEvents.Join, """{"since":2,"epoch":"e7"}""");

        Assert.Equal(
            [
                """["7","7","room:build","phx_reply",{"status":"ok","response":{"offset":5,"epoch":"e7","recovered":true}}]""",
                Stored("7", "room:build", 3, ts),
                Stored("7", "room:build", 4, ts),
                Stored("7", "room:build", 5, ts),
            ],
            transport.Frames);

        await SendAsync(connection, "7", "8", "room:build", "msg", """{"body":"live"}""");
        var frames = await transport.WaitForCountAsync(6);
        var live = Frame.Parse(frames[5]);
        Assert.Equal((null, 6L), (live.JoinRef, live.Payload.GetProperty("offset").GetInt64()));
    }

    [Fact]
    public async Task Join_with_nested_since_and_replay_across_pages()
    {
        await using var h = Start(o => o.ReplayPageSize = 2, new InMemoryHistoryStore("e7"));
        var ts = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync(Lobby, 6, ts);
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "2", "2", Lobby, PhoenixEvents.Join, """{"since":{"offset":1,"epoch":"e7"}}""");

        var frames = transport.Frames.Select(Frame.Parse).ToList();
        Assert.True(frames[0].Response.GetProperty("recovered").GetBoolean());
        Assert.Equal([2L, 3L, 4L, 5L, 6L], frames.Skip(1).Select(f => f.Payload.GetProperty("offset").GetInt64()));
        Assert.All(frames.Skip(1), f => Assert.Equal(("2", null, "msg"), (f.JoinRef, f.Ref, f.Event)));
    }

    [Fact]
    public async Task Join_with_since_and_no_epoch_recovers()
    {
        await using var h = Start();
        var ts = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync(Lobby, 3, ts);
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, """{"since":0}""");

        Assert.True(Frame.Parse(transport.Frames[0]).Response.GetProperty("recovered").GetBoolean());
        Assert.Equal([Stored("1", Lobby, 1, ts), Stored("1", Lobby, 2, ts), Stored("1", Lobby, 3, ts)], transport.Frames.Skip(1));
    }

    [Fact]
    public async Task Epoch_mismatch_is_not_recovered_and_replays_nothing()
    {
        await using var h = Start(store: new InMemoryHistoryStore("e8"));
        await h.SeedAsync(Lobby, 5, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, """{"since":2,"epoch":"e7"}""");

        Assert.Equal(["""["1","1","room:lobby","phx_reply",{"status":"ok","response":{"offset":5,"epoch":"e8","recovered":false}}]"""], transport.Frames);
        Assert.Equal(1, connection.JoinedCount);
    }

    [Fact]
    public async Task Since_beyond_the_head_is_not_recovered()
    {
        await using var h = Start();
        await h.SeedAsync(Lobby, 2, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, """{"since":9}""");

        var reply = Assert.Single(transport.Frames);
        Assert.False(Frame.Parse(reply).Response.GetProperty("recovered").GetBoolean());
    }

    [Fact]
    public async Task Since_before_the_retained_range_is_not_recovered_after_retention()
    {
        await using var h = Start(o => o.RetentionMessagesPerTopic = 2);
        var ts = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync(Lobby, 5, ts);
        Assert.Equal(3, await h.Hub.RunRetentionAsync().WaitAsync(WaitLimit));
        var position = await h.Store.GetPositionAsync(Lobby).AsTask().WaitAsync(WaitLimit);
        Assert.Equal((5L, 4L), (position.Head, position.FirstRetained));

        async Task<(bool Recovered, List<Frame> Replayed)> JoinSince(string joinRef, long since)
        {
            var (connection, transport) = h.Connect("c" + joinRef);
            await SendAsync(connection, joinRef, joinRef, Lobby, PhoenixEvents.Join, $$"""{"since":{{since}}}""");
            var frames = transport.Frames.Select(Frame.Parse).ToList();
            Assert.Equal(5, frames[0].Response.GetProperty("offset").GetInt64());
            return (frames[0].Response.GetProperty("recovered").GetBoolean(), frames.Skip(1).ToList());
        }

        var tooOld = await JoinSince("1", 1);
        Assert.False(tooOld.Recovered);
        Assert.Empty(tooOld.Replayed);

        var justOld = await JoinSince("2", 2); // would need offset 3, which is gone
        Assert.False(justOld.Recovered);
        Assert.Empty(justOld.Replayed);

        var edge = await JoinSince("3", 3); // needs 4 and 5: both retained
        Assert.True(edge.Recovered);
        Assert.Equal([Stored("3", Lobby, 4, ts), Stored("3", Lobby, 5, ts)], edge.Replayed.Select(f => f.Raw));

        var upToDate = await JoinSince("4", 5);
        Assert.True(upToDate.Recovered);
        Assert.Empty(upToDate.Replayed);
    }

    [Fact]
    public async Task Join_with_since_ms_replays_by_time()
    {
        await using var h = Start();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync(Lobby, 2, now - 5000);
        await h.SeedAsync(Lobby, 2, now - 1000);
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, $$"""{"since_ms":{{now - 2000}}}""");

        var frames = transport.Frames.Select(Frame.Parse).ToList();
        Assert.True(frames[0].Response.GetProperty("recovered").GetBoolean());
        Assert.Equal([3L, 4L], frames.Skip(1).Select(f => f.Payload.GetProperty("offset").GetInt64()));
    }

    [Fact]
    public async Task Join_with_since_ms_replays_across_pages()
    {
        await using var h = Start(o => o.ReplayPageSize = 2);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync(Lobby, 1, now - 9000);
        await h.SeedAsync(Lobby, 5, now - 1000);
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, $$"""{"since_ms":{{now - 2000}}}""");

        var frames = transport.Frames.Select(Frame.Parse).ToList();
        Assert.True(frames[0].Response.GetProperty("recovered").GetBoolean());
        Assert.Equal([2L, 3L, 4L, 5L, 6L], frames.Skip(1).Select(f => f.Payload.GetProperty("offset").GetInt64()));
    }

    [Fact]
    public async Task Join_with_since_ms_before_trimmed_messages_is_not_recovered()
    {
        await using var h = Start(o => o.RetentionMessagesPerTopic = 1);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync(Lobby, 1, now - 5000);
        await h.SeedAsync(Lobby, 1, now - 1000);
        Assert.Equal(1, await h.Hub.RunRetentionAsync().WaitAsync(WaitLimit));
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, $$"""{"since_ms":{{now - 6000}}}""");

        var reply = Assert.Single(transport.Frames);
        Assert.False(Frame.Parse(reply).Response.GetProperty("recovered").GetBoolean());
    }

    /// <summary>Seeds 3 messages, makes every store read fail, and joins with since 0.</summary>
    private static async Task<(Connections.HubConnection Connection, InMemoryTransport Transport)> JoinWithFailingReplayAsync(HubHarness h)
    {
        await h.SeedAsync(Lobby, 3, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        h.Store.FailReads = new IOException("read failed");
        var (connection, transport) = h.Connect();
        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, """{"since":0}""");
        return (connection, transport);
    }

    [Fact]
    public async Task Replay_failure_after_the_ok_reply_tells_the_client_the_channel_errored()
    {
        await using var h = Start();
        var (connection, transport) = await JoinWithFailingReplayAsync(h);

        var frames = transport.Frames.Select(Frame.Parse).ToList();
        Assert.Single(frames, f => f.IsReplyTo("1")); // one reply per ref
        if (frames[0].Status == "ok")
        {
            // The client was told it joined: it must now be told the channel is gone so it rejoins.
            Assert.Contains(frames, f => f.Event == PhoenixEvents.Error && f.JoinRef == "1");
        }
        Assert.Equal(0, connection.JoinedCount);
    }

    [Fact]
    public async Task Retention_trimming_during_a_replay_is_never_passed_off_as_recovered()
    {
        var store = new InMemoryHistoryStore();
        await using var h = Start(o => o.ReplayPageSize = 2, store: store);
        var ts = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await h.SeedAsync(Lobby, 10, ts);
        // After the first page (offsets 1-2) is read, retention removes 1-6.
        store.AfterRangeRead = after =>
        {
            if (after == 0)
            {
                store.TrimAsync(new RetentionPolicy(4, TimeSpan.Zero), ts).AsTask().Wait();
            }
        };
        var (connection, transport) = h.Connect();

        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, """{"since":0}""");

        var frames = transport.Frames.Select(Frame.Parse).ToList();
        Assert.True(frames[0].Response.GetProperty("recovered").GetBoolean()); // what was known when it replied
        var replayed = frames.Where(f => f.Event == "msg").Select(f => f.Payload.GetProperty("offset").GetInt64()).ToList();
        Assert.Equal([1L, 2L], replayed); // nothing after the hole
        Assert.Equal(PhoenixEvents.Error, frames[^1].Event); // the client is told to rejoin (and will get recovered:false)
        Assert.Equal(0, connection.JoinedCount);
    }

    [Fact]
    public async Task Leave_is_never_rate_limited()
    {
        await using var h = Start(o => { o.PushesPerSecond = 0.001; o.PushBurst = 1; });
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby); // takes the only token
        await SendAsync(connection, "1", "2", Lobby, PhoenixEvents.Leave);
        var reply = Frame.Parse(transport.Frames[1]);
        Assert.Equal("ok", reply.Status);
        Assert.Equal(0, connection.JoinedCount);
    }

    [Theory]
    [InlineData("history", """{"before":"x"}""")]
    [InlineData("history", """{"limit":"5"}""")]
    public async Task Numbers_of_the_wrong_type_are_invalid_payload_not_internal_errors(string @event, string payload)
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);
        await SendAsync(connection, "1", "2", Lobby, @event, payload);
        Assert.Equal("invalid_payload", Frame.Parse(transport.Frames[^1]).Response.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Nested_since_offset_of_the_wrong_type_is_invalid_payload()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await SendAsync(connection, "1", "1", Lobby, PhoenixEvents.Join, """{"since":{"offset":"5"}}""");
        Assert.Equal("invalid_payload", Frame.Parse(transport.Frames[^1]).Response.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task A_history_page_stays_under_a_quarter_of_the_outbound_queue_and_says_there_is_more()
    {
        var store = new InMemoryHistoryStore();
        await using var h = Start(o => o.MaxOutboundQueueBytes = 64 * 1024, store: store);
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);
        for (var i = 0; i < 20; i++)
        {
            await SendAsync(connection, "1", $"p{i}", Lobby, "msg", $$"""{"body":"{{new string('x', 4000)}}"}""");
        }
        await ReplyAsync(transport, "p19");
        await SendAsync(connection, "1", "h", Lobby, "history", """{"limit":20}""");
        var reply = await ReplyAsync(transport, "h");
        var messages = reply.Response.GetProperty("messages").GetArrayLength();
        Assert.InRange(messages, 1, 19);
        Assert.True(reply.Response.GetProperty("more").GetBoolean());
    }

    [Fact]
    public async Task Replay_failure_leaves_no_subscriber_behind()
    {
        await using var h = Start();
        var (connection, transport) = await JoinWithFailingReplayAsync(h);

        Assert.Equal(0, connection.JoinedCount);
        Assert.False(h.Hub.Topics.TryGet(Lobby, out _)); // the last subscriber left: the topic was evicted
        Assert.DoesNotContain(transport.Frames.Select(Frame.Parse), f => f.Event == "msg"); // nothing replayed
    }

    [Fact]
    public async Task Binary_msg_is_not_supported()
    {
        await using var h = Start();
        var (connection, transport) = h.Connect();
        await JoinAsync(connection, transport, Lobby);
        byte[] frame = [0, 1, 1, (byte)Lobby.Length, 3, .. "1"u8, .. "2"u8, .. System.Text.Encoding.UTF8.GetBytes(Lobby), .. "msg"u8, 1, 2, 3];
        Assert.True(PhoenixBinaryCodec.TryParsePush(frame, out var message, out _));

        using (message)
        {
            await connection.HandleAsync(message!, CancellationToken.None).AsTask().WaitAsync(WaitLimit);
        }

        var reply = Last(transport);
        Assert.Equal(("1", "2", "error", ErrorReasons.BinaryNotSupported), (reply.JoinRef, reply.Ref, reply.Status, reply.Reason));
        Assert.Equal(0, h.Store.Batches);
    }

    [Fact]
    public async Task Idle_connections_are_closed_with_4000_and_touched_ones_are_not()
    {
        await using var h = Start(o => o.IdleTimeout = TimeSpan.FromMilliseconds(400));
        var (_, idleTransport) = h.Connect("idle");
        var (busy, busyTransport) = h.Connect("busy");

        var deadline = DateTime.UtcNow + WaitLimit;
        while (!idleTransport.IsClosing && DateTime.UtcNow < deadline)
        {
            busy.Touch();
            await Task.Delay(10);
        }

        Assert.Equal(CloseStatus.IdleTimeout, idleTransport.CloseCode);
        Assert.False(busyTransport.IsClosing);
        Assert.True(h.Hub.Metrics.IdleTimeoutCloses >= 1);
    }

    // ---- shutdown -------------------------------------------------------------------------------

    [Fact]
    public async Task Shutdown_replies_to_queued_pushes_then_closes_with_1001()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var store = new InMemoryHistoryStore { AppendGate = gate.Task };
        await using var h = Start(store: store);
        try
        {
            await ShutdownWithQueuedPushAsync(h, store, gate);
        }
        finally
        {
            gate.TrySetResult(); // never leave the append pipeline blocked, even when an assertion failed
        }
    }

    private static async Task ShutdownWithQueuedPushAsync(HubHarness h, InMemoryHistoryStore store, TaskCompletionSource gate)
    {
        var (connection, transport) = h.Connect();
        var (idle, idleTransport) = h.Connect("idle");
        await JoinAsync(connection, transport, Lobby);

        await SendAsync(connection, "1", "2", Lobby, "msg", """{"body":"queued"}""");
        var shutdown = h.Hub.ShutdownAsync();
        await Task.Delay(50);
        Assert.False(shutdown.IsCompleted); // waiting for the queued append
        Assert.True(h.Hub.IsShuttingDown);
        Assert.False(transport.IsClosing);

        await SendAsync(connection, "1", "3", Lobby, "msg", """{"body":"late"}""");
        await SendAsync(connection, "4", "4", "room:other", PhoenixEvents.Join);
        Assert.Equal(ErrorReasons.ShuttingDown, (await ReplyAsync(transport, "3")).Reason);
        Assert.Equal(ErrorReasons.ShuttingDown, (await ReplyAsync(transport, "4")).Reason);

        gate.TrySetResult();
        await shutdown.WaitAsync(WaitLimit);

        var events = transport.Events;
        Assert.Equal("close:1001:server shutting down", events[^1]);
        var queuedReply = events.Take(events.Count - 1).Select(Frame.Parse).Single(f => f.IsReplyTo("2"));
        Assert.Equal(("ok", 1L), (queuedReply.Status, queuedReply.Response.GetProperty("offset").GetInt64()));
        Assert.Equal(CloseStatus.GoingAway, idleTransport.CloseCode);
        Assert.Equal(1, (await store.GetPositionAsync(Lobby).AsTask().WaitAsync(WaitLimit)).Head);

        // A connection attached after shutdown is closed at once.
        var (_, lateTransport) = h.Connect("late");
        Assert.Equal(CloseStatus.GoingAway, lateTransport.CloseCode);
    }

    [Fact]
    public async Task Dispose_shuts_down_and_closes_connections()
    {
        var h = Start();
        var (_, transport) = h.Connect();

        await h.DisposeAsync();

        Assert.Equal(CloseStatus.GoingAway, transport.CloseCode);
        Assert.True(h.Hub.IsShuttingDown);
    }

    private sealed class DenyTopic(string denied) : IJoinAuthorizer
    {
        public ValueTask<string?> AuthorizeJoinAsync(ConnectionPrincipal principal, string topic, JsonElement joinParams, CancellationToken cancellationToken) =>
            ValueTask.FromResult(topic == denied ? ErrorReasons.Unauthorized : null);
    }
}
