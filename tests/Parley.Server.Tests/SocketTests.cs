using System.Text;
using Parley.Hub.Auth;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

public sealed class SocketTests
{
    [Fact]
    public async Task Upgrade_answers_the_phoenix_subprotocol_and_passes_the_bearer_token_to_the_authenticator()
    {
        var authenticator = new RecordingAuthenticator();
        await using var hub = await TestHub.StartAsync(authenticator: authenticator);
        var bearer = Convert.ToBase64String(Encoding.ASCII.GetBytes("tok-123")).TrimEnd('=');
        await using var socket = await RawWebSocket.ConnectAsync(hub.BaseUrl, subprotocols: "phoenix, base64url.bearer.phx." + bearer);

        Assert.Contains("Sec-WebSocket-Protocol: phoenix", socket.HandshakeResponse, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("tok-123", authenticator.LastToken);
    }

    [Fact]
    public async Task Query_token_reaches_the_authenticator_and_a_rejection_is_403_before_the_upgrade()
    {
        var authenticator = new RecordingAuthenticator { Reject = true };
        await using var hub = await TestHub.StartAsync(authenticator: authenticator);
        var (socket, response) = await RawWebSocket.TryConnectAsync(hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=abc&user=x");
        await socket.DisposeAsync();

        Assert.StartsWith("HTTP/1.1 403", response, StringComparison.Ordinal);
        Assert.Equal("abc", authenticator.LastToken);
        Assert.Equal("x", authenticator.LastParams!["user"]);
        Assert.False(authenticator.LastParams.ContainsKey("token"));
    }

    [Theory]
    [InlineData("/socket/websocket", "400")]
    [InlineData("/socket/websocket?vsn=1.0.0", "400")]
    public async Task Unsupported_vsn_is_refused_with_a_reason(string path, string status)
    {
        await using var hub = await TestHub.StartAsync();
        var (socket, response) = await RawWebSocket.TryConnectAsync(hub.BaseUrl, path);
        await socket.DisposeAsync();
        Assert.StartsWith($"HTTP/1.1 {status}", response, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plain_http_get_of_the_socket_path_says_websocket_only()
    {
        await using var hub = await TestHub.StartAsync();
        using var http = new HttpClient();
        var response = await http.GetAsync(new Uri(hub.BaseUrl, "/socket/websocket?vsn=2.0.0"));
        Assert.Equal(426, (int)response.StatusCode);
        Assert.Contains("WebSocket", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_is_acked_after_commit_and_broadcast_to_every_subscriber_including_the_sender()
    {
        await using var hub = await TestHub.StartAsync();
        await using var a = await hub.ConnectAsync();
        await using var b = await hub.ConnectAsync();
        var joinA = await a.JoinAsync("room:chat");
        await b.JoinAsync("room:chat");
        Assert.Equal(0, joinA["offset"]!.GetValue<long>());

        var pushRef = await a.PushAsync("1", "room:chat", "msg", new { body = "hello", meta = new { kind = "greeting" } });
        var others = new List<ServerFrame>();
        var reply = await a.ReadReplyAsync(pushRef, others);
        Assert.Equal("ok", reply.Status());
        Assert.Equal(1, reply.Response()["offset"]!.GetValue<long>());
        Assert.True(reply.Response()["ts"]!.GetValue<long>() > 1_700_000_000_000);

        var atA = others.Find(f => f.Event == "msg") ?? await a.ReadUntilAsync(f => f.Event == "msg");
        var atB = await b.ReadUntilAsync(f => f.Opcode == 1 && f.Event == "msg");
        foreach (var frame in new[] { atA, atB })
        {
            Assert.Null(frame.JoinRef);
            Assert.Equal("hello", frame.Payload_!["body"]!.GetValue<string>());
            Assert.Equal("greeting", frame.Payload_!["meta"]!["kind"]!.GetValue<string>());
            Assert.Equal(reply.Response()["id"]!.GetValue<string>(), frame.Payload_!["id"]!.GetValue<string>());
            Assert.StartsWith("anon-", frame.Payload_!["from"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Rejoin_with_since_replays_exactly_the_missed_messages_before_live_ones()
    {
        await using var hub = await TestHub.StartAsync();
        await using var writer = await hub.ConnectAsync();
        await writer.JoinAsync("room:r");
        for (var i = 1; i <= 5; i++)
        {
            await writer.ReadReplyAsync(await writer.PushAsync("1", "room:r", "msg", new { body = $"m{i}" }));
        }

        await using var reader = await hub.ConnectAsync();
        var epoch = (await writer.JoinAsync("room:r"))["epoch"]!.GetValue<string>(); // rejoin on the writer: duplicate join is fine
        var join = await reader.JoinAsync("room:r", new { since = 2, epoch });
        Assert.True(join["recovered"]!.GetValue<bool>());
        Assert.Equal(5, join["offset"]!.GetValue<long>());

        var live = await writer.PushAsync(null, "room:r", "msg", new { body = "live" });
        var offsets = new List<long>();
        while (offsets.Count < 4)
        {
            var frame = await reader.ReadUntilAsync(f => f.Opcode == 1 && f.Event == "msg");
            offsets.Add(frame.Payload_!["offset"]!.GetValue<long>());
            if (offsets.Count <= 3)
            {
                Assert.NotNull(frame.JoinRef); // replay is scoped to this join
            }
        }
        Assert.Equal([3L, 4L, 5L, 6L], offsets);
        Assert.NotNull(live);
    }

    [Fact]
    public async Task Nested_since_form_and_since_ms_are_accepted()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        var epoch = (await client.JoinAsync("room:n"))["epoch"]!.GetValue<string>();
        await client.ReadReplyAsync(await client.PushAsync("1", "room:n", "msg", new { body = "old" }));
        await Task.Delay(20);
        var cut = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await Task.Delay(20);
        await client.ReadReplyAsync(await client.PushAsync("1", "room:n", "msg", new { body = "new" }));

        await using var nested = await hub.ConnectAsync();
        var join = await nested.JoinAsync("room:n", new { since = new { offset = 1, epoch } });
        Assert.True(join["recovered"]!.GetValue<bool>());
        var replayed = await nested.ReadUntilAsync(f => f.Event == "msg");
        Assert.Equal("new", replayed.Payload_!["body"]!.GetValue<string>());

        await using var byTime = await hub.ConnectAsync();
        var timeJoin = await byTime.JoinAsync("room:n", new { since_ms = cut });
        Assert.True(timeJoin["recovered"]!.GetValue<bool>());
        var fromTime = await byTime.ReadUntilAsync(f => f.Event == "msg");
        Assert.Equal("new", fromTime.Payload_!["body"]!.GetValue<string>());
    }

    [Fact]
    public async Task Epoch_mismatch_or_since_past_retention_gives_recovered_false_and_no_replay()
    {
        await using var hub = await TestHub.StartAsync(o => o.RetentionMessagesPerTopic = 2);
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:e");
        for (var i = 0; i < 5; i++)
        {
            await client.ReadReplyAsync(await client.PushAsync("1", "room:e", "msg", new { body = $"m{i}" }));
        }
        await hub.Hub.RunRetentionAsync();

        await using var other = await hub.ConnectAsync();
        var wrongEpoch = await other.JoinAsync("room:e", new { since = 4, epoch = "not-this-one" });
        Assert.False(wrongEpoch["recovered"]!.GetValue<bool>());
        var tooOld = await other.JoinAsync("room:e", new { since = 1 });
        Assert.False(tooOld["recovered"]!.GetValue<bool>());
        var inRange = await other.JoinAsync("room:e", new { since = 3 });
        Assert.True(inRange["recovered"]!.GetValue<bool>());
        var first = await other.ReadUntilAsync(f => f.Event == "msg");
        Assert.Equal(4, first.Payload_!["offset"]!.GetValue<long>()); // nothing from the refused joins came first
    }

    [Fact]
    public async Task Client_id_makes_a_push_idempotent()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:i");
        var first = await client.ReadReplyAsync(await client.PushAsync("1", "room:i", "msg", new { body = "once", client_id = "k1" }));
        var second = await client.ReadReplyAsync(await client.PushAsync("1", "room:i", "msg", new { body = "once", client_id = "k1" }));
        Assert.Equal(first.Response()["id"]!.GetValue<string>(), second.Response()["id"]!.GetValue<string>());
        Assert.Equal(first.Response()["offset"]!.GetValue<long>(), second.Response()["offset"]!.GetValue<long>());
        Assert.True(second.Response()["duplicate"]!.GetValue<bool>());
        var position = await hub.Hub.History.GetPositionAsync("room:i");
        Assert.Equal(1, position.Head);
    }

    [Fact]
    public async Task History_pages_newest_first()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:h");
        for (var i = 1; i <= 5; i++)
        {
            await client.ReadReplyAsync(await client.PushAsync("1", "room:h", "msg", new { body = $"m{i}" }));
        }
        var page = await client.ReadReplyAsync(await client.PushAsync("1", "room:h", "history", new { limit = 2 }));
        Assert.Equal([5L, 4L], page.Response()["messages"]!.AsArray().Select(m => m!["offset"]!.GetValue<long>()));
        Assert.True(page.Response()["more"]!.GetValue<bool>());
        var rest = await client.ReadReplyAsync(await client.PushAsync("1", "room:h", "history", new { before = 4, limit = 10 }));
        Assert.Equal([3L, 2L, 1L], rest.Response()["messages"]!.AsArray().Select(m => m!["offset"]!.GetValue<long>()));
        Assert.False(rest.Response()["more"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Duplicate_join_closes_the_old_instance_then_joins_again()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.SendTextAsync("""["1","1","room:d","phx_join",{}]""");
        await client.ReadReplyAsync("1");
        await client.SendTextAsync("""["5","5","room:d","phx_join",{}]""");
        var close = await client.ReadUntilAsync(f => f.Event is not ("presence_state" or "presence_diff"));
        Assert.Equal("""["1","1","room:d","phx_close",{}]""", close.Text);
        var reply = await client.ReadReplyAsync("5");
        Assert.Equal("ok", reply.Status());
        Assert.Equal("5", reply.JoinRef);
    }

    [Fact]
    public async Task Leave_replies_ok_then_phx_close_and_stops_delivery()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await using var writer = await hub.ConnectAsync();
        await client.SendTextAsync("""["1","1","room:l","phx_join",{}]""");
        await client.ReadReplyAsync("1");
        await writer.JoinAsync("room:l");
        await client.SendTextAsync("""["1","2","room:l","phx_leave",{}]""");
        static bool NotPresence(ServerFrame f) => f.Event is not ("presence_state" or "presence_diff");
        Assert.Equal("""["1","2","room:l","phx_reply",{"status":"ok","response":{}}]""", (await client.ReadUntilAsync(NotPresence)).Text);
        Assert.Equal("""["1","1","room:l","phx_close",{}]""", (await client.ReadUntilAsync(NotPresence)).Text);

        await writer.ReadReplyAsync(await writer.PushAsync("1", "room:l", "msg", new { body = "after leave" }));
        var heartbeat = await client.PushAsync(null, "phoenix", "heartbeat", null);
        var next = await client.ReadFrameAsync();
        Assert.Equal(heartbeat, next.Ref); // the heartbeat reply, not the message: delivery stopped
    }

    [Fact]
    public async Task Heartbeat_is_answered_on_the_phoenix_topic()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.SendTextAsync("""[null,"12","phoenix","heartbeat",{}]""");
        Assert.Equal("""[null,"12","phoenix","phx_reply",{"status":"ok","response":{}}]""", (await client.ReadFrameAsync()).Text);
    }

    [Fact]
    public async Task Binary_push_frames_are_parsed_and_answered()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:b");
        // kind 0 push: join_ref "1", ref "9", topic, event "msg", raw payload
        var frame = new List<byte> { 0, 1, 1, 6, 3 };
        frame.AddRange("19room:bmsg"u8.ToArray());
        frame.AddRange(new byte[] { 1, 2, 3 });
        await client.SendFrameAsync(0x2, frame.ToArray());
        var reply = await client.ReadReplyAsync("9");
        Assert.Equal("error", reply.Status());
        Assert.Equal("binary_not_supported", reply.Reason());
    }

    [Theory]
    [InlineData("https://evil.example", false)]
    [InlineData("null", false)]
    [InlineData("http://localhost:3000", true)]
    [InlineData("http://127.0.0.1:8080", true)]
    [InlineData("https://dashboard.example", true)]
    public async Task Browser_origins_from_other_sites_are_refused(string origin, bool allowed)
    {
        await using var hub = await TestHub.StartAsync(configureServer: o => o.AllowedOrigins.Add("https://dashboard.example"));
        var (socket, response) = await RawWebSocket.TryConnectAsync(hub.BaseUrl, "/socket/websocket?vsn=2.0.0", extraHeaders: $"Origin: {origin}\r\n");
        await socket.DisposeAsync();
        Assert.StartsWith(allowed ? "HTTP/1.1 101" : "HTTP/1.1 403", response, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[] { 0x03, 0xE8 }, 1000)]          // 1000 echoed
    [InlineData(new byte[0], 1000)]                        // no code → 1000
    [InlineData(new byte[] { 0x0F, 0xA0 }, 4000)]          // application codes echoed
    [InlineData(new byte[] { 0x03, 0xEE }, 1002)]          // 1006 may not be sent by a peer
    [InlineData(new byte[] { 0x03, 0xE8, 0xFF, 0xFE }, 1007)] // reason is not UTF-8
    public async Task A_client_close_is_echoed_with_a_valid_code(byte[] payload, int expected)
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.SendFrameAsync(0x8, payload);
        Assert.Equal(expected, (await client.ReadCloseAsync()).CloseCode);
        Assert.True(await client.WaitForEndOfStreamAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Fresh_connections_are_upgraded_off_the_raw_pipes_and_keep_alive_upgrades_still_work()
    {
        await using var hub = await TestHub.StartAsync();

        // A fresh connection: the connection middleware answers the handshake itself (no Kestrel HTTP headers).
        await using (var fresh = await hub.ConnectAsync())
        {
            Assert.DoesNotContain("Date:", fresh.HandshakeResponse, StringComparison.OrdinalIgnoreCase);
            await fresh.JoinAsync("room:paths");
        }

        // An HTTP request first, then an upgrade on the same keep-alive connection: the HTTP endpoint takes it.
        var (socket, response) = await RawWebSocket.TryConnectAsync(hub.BaseUrl, "/socket/websocket?vsn=2.0.0",
            prelude: $"GET /health HTTP/1.1\r\nHost: {hub.BaseUrl.Authority}\r\n\r\n");
        await using (socket)
        {
            Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
            Assert.Contains("Date:", response, StringComparison.OrdinalIgnoreCase);
            var join = await socket.JoinAsync("room:paths");
            Assert.NotNull(join["epoch"]);
        }
    }

    private sealed class RecordingAuthenticator : IConnectAuthenticator
    {
        public bool Reject { get; init; }
        public string? LastToken { get; private set; }
        public IReadOnlyDictionary<string, string>? LastParams { get; private set; }

        public ValueTask<ConnectResult> AuthenticateAsync(ConnectRequest request, CancellationToken cancellationToken)
        {
            LastToken = request.Token;
            LastParams = request.Params;
            return ValueTask.FromResult(Reject ? ConnectResult.Reject("unauthorized") : ConnectResult.Accept(ConnectionPrincipal.Anonymous(request.ConnectionId)));
        }
    }
}
