using System.Text;
using System.Text.Json;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Every limit of docs/protocol.md §Limits answers clearly, and the hub keeps serving everyone else.</summary>
public sealed class BadInputTests
{
    [Fact]
    public async Task Frame_over_64_KiB_is_closed_with_1009()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        var big = "[null,\"1\",\"room:x\",\"msg\",{\"body\":\"" + new string('a', 70 * 1024) + "\"}]";
        await client.SendTextAsync(big);
        var close = await client.ReadCloseAsync();
        Assert.Equal(1009, close.CloseCode);
        Assert.Contains("65536", close.CloseReason, StringComparison.Ordinal);
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Fact]
    public async Task Body_over_16_KiB_gets_too_large()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:big");
        var reply = await client.ReadReplyAsync(await client.PushAsync("1", "room:big", "msg", new { body = new string('b', 16 * 1024 + 1) }));
        Assert.Equal("error", reply.Status());
        Assert.Equal("too_large", reply.Reason());
        var ok = await client.ReadReplyAsync(await client.PushAsync("1", "room:big", "msg", new { body = new string('b', 16 * 1024) }));
        Assert.Equal("ok", ok.Status());
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Fact]
    public async Task Push_flood_gets_rate_limited_with_retry_after_then_closed_with_1008()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:flood");
        var frames = new StringBuilder();
        for (var i = 0; i < 800; i++)
        {
            await client.SendTextAsync($$"""["1","p{{i}}","room:flood","history",{"limit":1}]""");
        }
        int ok = 0, limited = 0;
        ServerFrame? close = null;
        while (close is null)
        {
            var frame = await client.ReadFrameAsync();
            if (frame.IsClose)
            {
                close = frame;
                break;
            }
            if (frame.Event != "phx_reply")
            {
                continue;
            }
            if (frame.Status() == "ok")
            {
                ok++;
            }
            else
            {
                Assert.Equal("rate_limited", frame.Reason());
                Assert.True(frame.Response()["retry_after_ms"]!.GetValue<int>() > 0);
                limited++;
            }
        }
        Assert.InRange(ok, 200, 260); // the burst (200) plus what refilled at 100/s meanwhile
        Assert.True(limited >= 400, $"{limited} rate-limited replies before the close");
        Assert.Equal(1008, close.CloseCode);
        Assert.True(hub.Hub.Metrics.RateLimitedPushes >= 400);
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Fact]
    public async Task The_101st_topic_on_a_socket_gets_too_many_topics()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        for (var i = 0; i < 100; i++)
        {
            await client.JoinAsync($"room:t{i}");
        }
        var joinRef = await client.PushAsync(null, "room:t100", "phx_join", new { });
        var reply = await client.ReadReplyAsync(joinRef);
        Assert.Equal("too_many_topics", reply.Reason());
        await client.SendTextAsync("""["1","lv","room:t0","phx_leave",{}]""");
        await client.ReadReplyAsync("lv");
        await client.JoinAsync("room:t100"); // a slot freed by a leave is usable again
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Theory]
    [InlineData("not json at all", "malformed JSON")]
    [InlineData("{\"topic\":\"room:a\"}", "JSON array")]
    [InlineData("[null,\"1\",\"room:a\"]", "JSON array")]
    [InlineData("[null,1,\"room:a\",\"msg\",{}]", "strings or null")]
    [InlineData("[null,\"1\",42,\"msg\",{}]", "topic and event must be strings")]
    public async Task Malformed_envelopes_are_closed_with_1007_and_a_reason(string text, string reasonPart)
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.SendTextAsync(text);
        var close = await client.ReadCloseAsync();
        Assert.Equal(1007, close.CloseCode);
        Assert.Contains(reasonPart, close.CloseReason, StringComparison.Ordinal);
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Fact]
    public async Task Invalid_utf8_text_is_closed_with_1007()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        var bytes = Encoding.UTF8.GetBytes("[null,\"1\",\"room:a\",\"msg\",{\"body\":\"x\"}]");
        bytes[^4] = 0xFF;
        await client.SendFrameAsync(0x1, bytes);
        Assert.Equal(1007, (await client.ReadCloseAsync()).CloseCode);
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0x40)]
    public async Task Frames_breaking_RFC_6455_are_closed_with_1002(bool mask, byte rsv)
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.SendFrameAsync(0x1, Encoding.UTF8.GetBytes("""[null,"1","phoenix","heartbeat",{}]"""), mask: mask, rsv: rsv);
        Assert.Equal(1002, (await client.ReadCloseAsync()).CloseCode);
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Fact]
    public async Task Malformed_binary_frame_is_closed_with_1007()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.SendFrameAsync(0x2, new byte[] { 0, 9, 9, 9, 9, 1 });
        var close = await client.ReadCloseAsync();
        Assert.Equal(1007, close.CloseCode);
        Assert.Contains("shorter", close.CloseReason, StringComparison.Ordinal);
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Fact]
    public async Task Unknown_events_unjoined_topics_and_bad_payloads_get_error_replies_and_the_socket_stays_open()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:ok");

        var unknown = await client.ReadReplyAsync(await client.PushAsync("1", "room:ok", "dance", new { }));
        Assert.Equal("unknown_event", unknown.Reason());

        var unjoined = await client.ReadReplyAsync(await client.PushAsync("7", "room:elsewhere", "msg", new { body = "x" }));
        Assert.Equal("unmatched topic", unjoined.Reason());
        Assert.Null(unjoined.JoinRef);

        var unmatched = await client.ReadReplyAsync(await client.PushAsync(null, "nope:x", "phx_join", new { }));
        Assert.Equal("unmatched topic", unmatched.Reason());

        var badName = await client.ReadReplyAsync(await client.PushAsync(null, "room:bad name!", "phx_join", new { }));
        Assert.Equal("invalid_topic", badName.Reason());

        var badSince = await client.ReadReplyAsync(await client.PushAsync(null, "room:s", "phx_join", new { since = "yesterday" }));
        Assert.Equal("invalid_payload", badSince.Reason());

        foreach (var payload in new object[] { new { body = 5 }, new { text = "no body" }, new { body = "x", meta = "not an object" }, new { body = "x", client_id = 3 } })
        {
            var reply = await client.ReadReplyAsync(await client.PushAsync("1", "room:ok", "msg", payload));
            Assert.Equal("invalid_payload", reply.Reason());
            Assert.NotNull(reply.Response()["detail"]);
        }
        await client.SendTextAsync("""["1","arr","room:ok","msg",[1,2]]""");
        Assert.Equal("invalid_payload", (await client.ReadReplyAsync("arr")).Reason());

        var badHistory = await client.ReadReplyAsync(await client.PushAsync("1", "room:ok", "history", new { limit = 100000 }));
        Assert.Equal("invalid_payload", badHistory.Reason());

        var phoenixOther = await client.ReadReplyAsync(await client.PushAsync(null, "phoenix", "dance", new { }));
        Assert.Equal("unknown_event", phoenixOther.Reason());

        var stillFine = await client.ReadReplyAsync(await client.PushAsync("1", "room:ok", "msg", new { body = "fine" }));
        Assert.Equal("ok", stillFine.Status());
        await Probe.AssertServesWellBehavedClientAsync(hub.BaseUrl);
    }

    [Fact]
    public async Task A_silent_socket_is_closed_after_the_idle_timeout_with_4000()
    {
        // 1.5 s against heartbeats every 200 ms: wide enough that a loaded machine does not close the chatty one too.
        await using var hub = await TestHub.StartAsync(o => o.IdleTimeout = TimeSpan.FromMilliseconds(1500));
        await using var silent = await hub.ConnectAsync();
        await using var chatty = await hub.ConnectAsync();
        var started = DateTime.UtcNow;
        using var stop = new CancellationTokenSource();
        var heartbeats = Task.Run(async () =>
        {
            var answered = 0;
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(200);
                await chatty.ReadReplyAsync(await chatty.PushAsync(null, "phoenix", "heartbeat", null));
                answered++;
            }
            return answered;
        });
        var close = await silent.ReadCloseAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(4000, close.CloseCode);
        Assert.Contains("idle", close.CloseReason, StringComparison.Ordinal);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(1400));
        await Task.Delay(500); // the heartbeating socket stays open past the silent one's close
        await stop.CancelAsync();
        Assert.True(await heartbeats.WaitAsync(TimeSpan.FromSeconds(10)) >= 3);
        Assert.True(hub.Hub.Metrics.IdleTimeoutCloses >= 1);
    }

    [Fact]
    public async Task A_slow_consumer_is_closed_with_4008_without_slowing_others_and_recovers_on_rejoin()
    {
        await using var hub = await TestHub.StartAsync(o =>
        {
            o.MaxOutboundQueueBytes = 1024 * 1024;
            o.PushesPerSecond = 100_000;
            o.PushBurst = 100_000;
        });
        await using var slow = await hub.ConnectAsync(receiveBufferBytes: 4096);
        await using var fast = await hub.ConnectAsync();
        await using var publisher = await hub.ConnectAsync();
        var epoch = (await slow.JoinAsync("room:firehose"))["epoch"]!.GetValue<string>();
        await fast.JoinAsync("room:firehose");
        await publisher.JoinAsync("room:firehose");

        // 1,000 x 8 KiB = 8 MiB: far more than the slow socket's queue limit plus kernel buffers.
        const int count = 1000;
        const int window = 16;
        var body = new string('x', 8 * 1024);
        var fastOffsets = new List<long>();
        var fastReader = Task.Run(async () =>
        {
            while (fastOffsets.Count < count)
            {
                var f = await fast.ReadUntilAsync(f => f.Opcode == 1 && f.Event == "msg");
                fastOffsets.Add(f.Payload_!["offset"]!.GetValue<long>());
            }
        });
        var acks = 0;
        for (var sent = 0; sent < count; sent += window)
        {
            for (var i = 0; i < window && sent + i < count; i++)
            {
                await publisher.PushAsync("1", "room:firehose", "msg", new { body });
            }
            while (acks < Math.Min(sent + window, count))
            {
                var f = await publisher.ReadFrameAsync();
                if (f.Event == "phx_reply")
                {
                    Assert.Equal("ok", f.Status());
                    acks++;
                }
            }
        }
        Assert.Equal(count, acks);
        await fastReader.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(1, count).Select(i => (long)i), fastOffsets);
        Assert.True(hub.Hub.Metrics.SlowConsumerDisconnects >= 1);

        // The slow socket, read at last, ends with 4008 "slow consumer"; the hub then hangs up.
        var close = await slow.ReadCloseAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(4008, close.CloseCode);
        Assert.Equal("slow consumer", close.CloseReason);

        await using var again = await hub.ConnectAsync();
        var join = await again.JoinAsync("room:firehose", new { since = 0, epoch });
        Assert.True(join["recovered"]!.GetValue<bool>());
        var replayed = 0;
        while (replayed < count)
        {
            var f = await again.ReadUntilAsync(f => f.Event == "msg");
            Assert.Equal(++replayed, f.Payload_!["offset"]!.GetValue<long>());
        }
    }
}
