using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Hub.Inbox;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>
/// Message events over the plain JSON WebSocket <c>/ws/messages</c> and the Phoenix topic <c>events:messages</c>
/// on a real hub with identity on; and the plain stream framework's rules (keepalive, idle close, invalid
/// frames, errors, authentication before the upgrade, shutdown, consumers that fall behind).
/// </summary>
public sealed class MessageStreamTests : AuthenticatedHubTest
{
    private const string SecretBody = "body-that-must-never-appear-7f3a";

    protected override void ConfigureServer(ServerOptions options) => options.Streams.IdleTimeout = TimeSpan.FromSeconds(2);

    private async Task<RawWebSocket> StreamAsync(string token, string query = "")
    {
        var path = "/ws/messages?token=" + Uri.EscapeDataString(token) + (query.Length > 0 ? "&" + query : "");
        return await RawWebSocket.ConnectAsync(Hub.BaseUrl, path, subprotocols: null);
    }

    private static async Task<JsonObject> ReadJsonAsync(RawWebSocket socket, List<string>? raw = null, TimeSpan? timeout = null)
    {
        var frame = await socket.ReadFrameAsync(timeout);
        Assert.False(frame.IsClose, $"closed: {frame.CloseCode} {frame.CloseReason}");
        raw?.Add(frame.Text);
        return JsonNode.Parse(frame.Text)!.AsObject();
    }

    private static async Task<JsonObject> ReadEventAsync(RawWebSocket socket, string kind, List<string>? raw = null, TimeSpan? timeout = null)
    {
        while (true)
        {
            var json = await ReadJsonAsync(socket, raw, timeout);
            if (json["type"]!.GetValue<string>() == "message_event" && json["event"]!.GetValue<string>() == kind)
            {
                return json;
            }
        }
    }

    private static async Task<string> DmAsync(ParleyClient sender, object payload)
    {
        var reply = await sender.PushAsync("hub:lobby", "dm", payload);
        Assert.True(reply.IsOk, reply.Response.ToString());
        return reply.Response.GetProperty("id").GetString()!;
    }

    [Fact]
    public async Task A_watcher_gets_a_snapshot_then_every_state_change_within_a_second_and_never_a_body()
    {
        var aliceToken = await TokenAsync("alice");
        var alice = await ConnectAsync(aliceToken);
        var bob = await ConnectAsUserAsync("bob");
        var earlier = await DmAsync(alice, new { to = "bob", body = SecretBody, correlation_id = "chain-0" });

        var raw = new List<string>();
        await using var watcher = await StreamAsync(aliceToken);
        var snapshot = await ReadJsonAsync(watcher, raw);
        Assert.Equal("snapshot", snapshot["type"]!.GetValue<string>());
        var recent = snapshot["recent_events"]!.AsArray();
        Assert.Equal(["sent", "queued"], recent.Select(e => e!["event"]!.GetValue<string>()));
        Assert.All(recent, e => Assert.Equal((earlier, "chain-0"), (e!["message_id"]!.GetValue<string>(), e["correlation_id"]!.GetValue<string>())));

        var stopwatch = Stopwatch.StartNew();
        var id = await DmAsync(alice, new { to = "bob", body = SecretBody, correlation_id = "chain-1" });
        var sent = await ReadEventAsync(watcher, "sent", raw, TimeSpan.FromSeconds(1));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(1));
        Assert.Equal((id, "alice", "bob", "dm", "chain-1"), (sent["message_id"]!.GetValue<string>(), sent["from"]!.GetValue<string>(),
            sent["to"]!.GetValue<string>(), sent["message_type"]!.GetValue<string>(), sent["correlation_id"]!.GetValue<string>()));
        Assert.True(DateTimeOffset.TryParse(sent["timestamp"]!.GetValue<string>(), out _));
        Assert.Equal("bob", (await ReadEventAsync(watcher, "queued", raw, TimeSpan.FromSeconds(1)))["to"]!.GetValue<string>());

        stopwatch.Restart();
        Assert.True((await bob.JoinAsync("user:bob")).IsOk); // both wait for bob: they are delivered now
        var delivered = await ReadEventAsync(watcher, "delivered", raw, TimeSpan.FromSeconds(1));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2));
        Assert.Equal(earlier, delivered["message_id"]!.GetValue<string>());
        Assert.Equal(id, (await ReadEventAsync(watcher, "delivered", raw, TimeSpan.FromSeconds(1)))["message_id"]!.GetValue<string>());

        stopwatch.Restart();
        Assert.True((await bob.PushAsync("user:bob", "ack", new { ids = new[] { id } })).IsOk);
        var read = await ReadEventAsync(watcher, "read", raw, TimeSpan.FromSeconds(1));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(1));
        Assert.Equal((id, "bob"), (read["message_id"]!.GetValue<string>(), read["to"]!.GetValue<string>()));

        // Metadata only: no frame carries the body or a body field (checked on the raw text).
        Assert.All(raw, text => Assert.DoesNotContain(SecretBody, text, StringComparison.Ordinal));
        Assert.All(raw, text => Assert.DoesNotContain("\"body\"", text, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Filters_by_instance_and_correlation_id_and_non_admins_see_only_their_own_messages()
    {
        var alice = await ConnectAsUserAsync("alice");
        await Id.RegisterAsync("bob");
        await Id.RegisterAsync("dave");
        var carolToken = await TokenAsync("carol");
        var carol = await ConnectAsync(carolToken);

        await using var byInstance = await StreamAsync(Id.OwnerKey, "instance=dave");
        await using var byChain = await StreamAsync(Id.OwnerKey, "correlation_id=chain-9");
        await using var asCarol = await StreamAsync(carolToken);
        foreach (var socket in new[] { byInstance, byChain, asCarol })
        {
            Assert.Empty((await ReadJsonAsync(socket))["recent_events"]!.AsArray());
        }

        var toBob = await DmAsync(alice, new { to = "bob", body = "x", correlation_id = "chain-9" });
        var toDave = await DmAsync(alice, new { to = "dave", body = "y" });
        var fromCarol = await DmAsync(carol, new { to = "dave", body = "z", correlation_id = "chain-9" });

        async Task<List<(string Id, string Event)>> TakeAsync(RawWebSocket socket, int count)
        {
            var events = new List<(string, string)>();
            while (events.Count < count)
            {
                var e = await ReadJsonAsync(socket);
                events.Add((e["message_id"]!.GetValue<string>(), e["event"]!.GetValue<string>()));
            }
            return events;
        }

        Assert.Equal([(toDave, "sent"), (toDave, "queued"), (fromCarol, "sent"), (fromCarol, "queued")], await TakeAsync(byInstance, 4));
        Assert.Equal([(toBob, "sent"), (toBob, "queued"), (fromCarol, "sent"), (fromCarol, "queued")], await TakeAsync(byChain, 4));
        Assert.Equal([(fromCarol, "sent"), (fromCarol, "queued")], await TakeAsync(asCarol, 2)); // alice's messages are not carol's business

        // A late non-admin watcher's snapshot is filtered the same way.
        await using var carolLater = await StreamAsync(carolToken);
        Assert.Equal([fromCarol, fromCarol], (await ReadJsonAsync(carolLater))["recent_events"]!.AsArray().Select(e => e!["message_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Ping_gets_pong_and_a_silent_stream_is_closed_with_1001()
    {
        await using var socket = await StreamAsync(Id.OwnerKey);
        await ReadJsonAsync(socket); // snapshot
        for (var i = 0; i < 3; i++)
        {
            await Task.Delay(TimeSpan.FromSeconds(0.8)); // pings keep it open past the 2 s idle timeout
            var stopwatch = Stopwatch.StartNew();
            await socket.SendTextAsync("""{"type":"ping"}""");
            Assert.Equal("pong", (await ReadJsonAsync(socket, timeout: TimeSpan.FromSeconds(5)))["type"]!.GetValue<string>());
            Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5));
        }
        var stopwatchIdle = Stopwatch.StartNew();
        var close = await socket.ReadCloseAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1001, close.CloseCode);
        Assert.Equal("idle timeout", close.CloseReason);
        Assert.InRange(stopwatchIdle.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(4));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("""["ping"]""")]
    [InlineData("""{"kind":"ping"}""")]
    [InlineData("""{"type":"subscribe"}""")]
    public async Task An_invalid_client_frame_closes_with_1008(string text)
    {
        await using var socket = await StreamAsync(Id.OwnerKey);
        await ReadJsonAsync(socket);
        await socket.SendTextAsync(text);
        Assert.Equal(1008, (await socket.ReadCloseAsync()).CloseCode);
    }

    [Theory]
    [InlineData("instance=")]
    [InlineData("correlation_id=0123456789012345678901234567890123456789012345678901234567890123456789")]
    [InlineData("since=5")]
    public async Task Bad_params_get_an_error_frame_then_4400(string query)
    {
        await using var socket = await StreamAsync(Id.OwnerKey, query);
        var error = await ReadJsonAsync(socket);
        Assert.Equal(("error", "bad_params"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.False(string.IsNullOrEmpty(error["message"]!.GetValue<string>()));
        Assert.Equal(4400, (await socket.ReadCloseAsync()).CloseCode);
    }

    [Fact]
    public async Task A_missing_or_wrong_token_is_refused_with_401_before_the_upgrade_and_a_bearer_header_works()
    {
        var (none, noneResponse) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/messages", subprotocols: null);
        await using (none)
        {
            Assert.StartsWith("HTTP/1.1 401", noneResponse, StringComparison.Ordinal);
        }
        var (wrong, wrongResponse) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/messages?token=prl_nottherightkey", subprotocols: null);
        await using (wrong)
        {
            Assert.StartsWith("HTTP/1.1 401", wrongResponse, StringComparison.Ordinal);
        }
        var (header, headerResponse) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/messages", subprotocols: null, extraHeaders: $"Authorization: Bearer {Id.OwnerKey}\r\n");
        await using (header)
        {
            Assert.StartsWith("HTTP/1.1 101", headerResponse, StringComparison.Ordinal);
            Assert.Equal("snapshot", (await ReadJsonAsync(header))["type"]!.GetValue<string>());
        }
        // The same on an HTTP keep-alive connection (the HTTP pipeline's endpoint), and an unknown stream is 404.
        var prelude = $"GET /health HTTP/1.1\r\nHost: {Hub.BaseUrl.Authority}\r\n\r\n";
        var (late, lateResponse) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/messages", subprotocols: null, prelude: prelude);
        await using (late)
        {
            Assert.StartsWith("HTTP/1.1 401", lateResponse, StringComparison.Ordinal);
        }
        var (unknown, unknownResponse) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/nothing?token=" + Id.OwnerKey, subprotocols: null);
        await using (unknown)
        {
            Assert.StartsWith("HTTP/1.1 404", unknownResponse, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_upgrade_on_a_keep_alive_connection_streams_too()
    {
        var prelude = $"GET /health HTTP/1.1\r\nHost: {Hub.BaseUrl.Authority}\r\n\r\n";
        var (socket, response) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/messages?token=" + Uri.EscapeDataString(Id.OwnerKey), subprotocols: null, prelude: prelude);
        await using (socket)
        {
            Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
            Assert.Equal("snapshot", (await ReadJsonAsync(socket))["type"]!.GetValue<string>());
            await socket.SendTextAsync("""{"type":"ping"}""");
            Assert.Equal("pong", (await ReadJsonAsync(socket))["type"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task A_ban_ends_the_users_streams_at_once_with_4403()
    {
        var carolToken = await TokenAsync("carol");
        await using var socket = await StreamAsync(carolToken);
        await ReadJsonAsync(socket);
        await Id.CallAsync(HttpMethod.Post, "/api/users/carol/ban");
        var error = await ReadJsonAsync(socket);
        Assert.Equal(("error", "forbidden"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.Equal(4403, (await socket.ReadCloseAsync()).CloseCode);
        var (again, response) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/messages?token=" + Uri.EscapeDataString(carolToken), subprotocols: null);
        await using (again)
        {
            Assert.StartsWith("HTTP/1.1 403", response, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Shutting_the_hub_down_closes_streams_with_1001()
    {
        await using var first = await StreamAsync(Id.OwnerKey);
        await using var second = await StreamAsync(Id.OwnerKey, "instance=bob");
        await ReadJsonAsync(first);
        await ReadJsonAsync(second);
        await Hub.Host.StopAsync().WaitAsync(TimeSpan.FromSeconds(10));
        foreach (var socket in new[] { first, second })
        {
            var close = await socket.ReadCloseAsync();
            Assert.Equal((1001, "server shutting down"), (close.CloseCode, close.CloseReason));
        }
    }

    [Fact]
    public async Task A_stalled_consumer_gets_a_fresh_snapshot_instead_of_stale_deltas_and_does_not_slow_another()
    {
        var healthy = await StreamAsync(Id.OwnerKey);
        var (stalled, response) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/ws/messages?token=" + Uri.EscapeDataString(Id.OwnerKey), subprotocols: null, receiveBufferBytes: 4096);
        Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
        await using var _ = healthy;
        await using var __ = stalled;
        await ReadJsonAsync(healthy);
        await ReadJsonAsync(stalled); // then it stops reading (but keeps pinging: this class's idle timeout is 2 s)
        using var stopPinging = new CancellationTokenSource();
        var pinger = Task.Run(async () =>
        {
            while (!stopPinging.IsCancellationRequested)
            {
                await healthy.SendTextAsync("""{"type":"ping"}""");
                await stalled.SendTextAsync("""{"type":"ping"}""");
                await Task.Delay(500);
            }
        });

        const int Total = 3_000;
        var healthyIds = new List<string>();
        var healthySnapshots = 0;
        var sawFinal = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = Stopwatch.StartNew();
        var reader = Task.Run(async () =>
        {
            while (true)
            {
                JsonObject json;
                try
                {
                    json = await ReadJsonAsync(healthy, timeout: TimeSpan.FromSeconds(30));
                }
                catch (Exception ex)
                {
                    sawFinal.TrySetException(ex);
                    return;
                }
                var type = json["type"]!.GetValue<string>();
                if (type == "snapshot")
                {
                    healthySnapshots++;
                    continue;
                }
                if (type == "pong")
                {
                    continue;
                }
                var id = json["message_id"]!.GetValue<string>();
                healthyIds.Add(id);
                if (id == "m-final")
                {
                    sawFinal.TrySetResult(clock.Elapsed);
                    return;
                }
            }
        });

        // Big events (a long detail) fill the stalled socket's buffers after a few megabytes.
        var events = Hub.Host.MessageEvents;
        var detail = new string('d', 4000);
        MessageEvent Event(string id) => new(id, MessageEventKinds.Failed, "alice", "bob", DmPriorities.Next, null, detail, Hub.Hub.NowMs, ["alice", "bob"]);
        for (var i = 0; i < Total; i += 10)
        {
            for (var j = i; j < i + 10; j++)
            {
                events.Publish(Event($"m-{j:D6}"));
            }
            await Task.Delay(1);
        }
        var publishedAt = clock.Elapsed;
        events.Publish(Event("m-final"));

        // The other consumer kept up: it has the last event promptly, every one in order.
        var finalAt = await sawFinal.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await reader;
        Assert.Equal(0, healthySnapshots);
        Assert.True(finalAt - publishedAt < TimeSpan.FromSeconds(2), $"the healthy consumer got the last event {(finalAt - publishedAt).TotalMilliseconds} ms after it was published");
        Assert.Equal(healthyIds.Order(StringComparer.Ordinal), healthyIds);
        Assert.Equal(Total + 1, healthyIds.Count);

        // The stalled one resumes: what was already on the wire, then a fresh snapshot, then only newer events.
        var deltas = 0;
        var lastSeen = "";
        JsonObject? resnapshot = null;
        while (true)
        {
            var json = await ReadJsonAsync(stalled, timeout: TimeSpan.FromSeconds(10));
            if (json["type"]!.GetValue<string>() == "pong")
            {
                continue;
            }
            if (json["type"]!.GetValue<string>() == "snapshot")
            {
                resnapshot = json;
                break;
            }
            var id = json["message_id"]!.GetValue<string>();
            Assert.True(string.CompareOrdinal(id, lastSeen) > 0);
            lastSeen = id;
            deltas++;
        }
        var recent = resnapshot["recent_events"]!.AsArray().Select(e => e!["message_id"]!.GetValue<string>()).ToList();
        Assert.Equal(100, recent.Count);
        Assert.True(string.CompareOrdinal(recent[0], lastSeen) > 0, "the snapshot is newer than every delta before it");
        Assert.True(deltas < Total, $"{deltas} deltas reached the stalled consumer: nothing was dropped");
        if (recent[^1] != "m-final")
        {
            var next = await ReadJsonAsync(stalled);
            while (next["type"]!.GetValue<string>() == "pong")
            {
                next = await ReadJsonAsync(stalled);
            }
            Assert.True(string.CompareOrdinal(next["message_id"]!.GetValue<string>(), recent[^1]) > 0);
        }
        await stopPinging.CancelAsync();
        await pinger;
        var metrics = await new HttpClient { BaseAddress = Hub.BaseUrl }.GetStringAsync("/metrics");
        var line = metrics.Split('\n').Single(l => l.StartsWith("parley_plain_stream_resyncs_total ", StringComparison.Ordinal));
        Assert.True(double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 1, line);
    }

    [Fact]
    public async Task A_stalled_phoenix_watcher_is_not_closed_and_gets_a_fresh_snapshot_event_instead_of_stale_deltas()
    {
        var (stalled, response) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=" + Uri.EscapeDataString(Id.OwnerKey), receiveBufferBytes: 4096);
        Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
        await using var _ = stalled;
        await stalled.JoinAsync(MessageEventsChannel.TopicName);
        await stalled.ReadUntilAsync(f => f.Event == "snapshot");
        using var stopBeating = new CancellationTokenSource();
        var heartbeat = Task.Run(async () =>
        {
            while (!stopBeating.IsCancellationRequested)
            {
                await stalled.PushAsync(null, "phoenix", "heartbeat", new { });
                await Task.Delay(500);
            }
        });

        // 3,000 events of ~4 KB: far more than the socket buffers and the 1 MiB lag budget hold.
        const int Total = 3_000;
        var detail = new string('d', 4000);
        MessageEvent Event(string id) => new(id, MessageEventKinds.Failed, "alice", "bob", DmPriorities.Next, null, detail, Hub.Hub.NowMs, ["alice", "bob"]);
        for (var i = 0; i < Total; i += 10)
        {
            for (var j = i; j < i + 10; j++)
            {
                Hub.Host.MessageEvents.Publish(Event($"m-{j:D6}"));
            }
            await Task.Delay(1);
        }

        // It reads again: what was already queued, in order, then a snapshot event newer than all of it, then only newer events.
        var deltas = 0;
        var lastSeen = "";
        ServerFrame resnapshot;
        while (true)
        {
            var frame = await stalled.ReadFrameAsync(TimeSpan.FromSeconds(10));
            Assert.False(frame.IsClose, $"closed: {frame.CloseCode} {frame.CloseReason}");
            if (frame.Topic != MessageEventsChannel.TopicName)
            {
                continue; // heartbeat replies
            }
            if (frame.Event == "snapshot")
            {
                resnapshot = frame;
                break;
            }
            var id = frame.Json[4]!["message_id"]!.GetValue<string>();
            Assert.True(string.CompareOrdinal(id, lastSeen) > 0);
            lastSeen = id;
            deltas++;
        }
        Assert.True(deltas < Total, $"{deltas} deltas reached the stalled watcher: nothing was dropped");
        var recent = resnapshot.Json[4]!["recent_events"]!.AsArray().Select(e => e!["message_id"]!.GetValue<string>()).ToList();
        Assert.Equal($"m-{Total - 1:D6}", recent[^1]);
        Assert.True(string.CompareOrdinal(recent[0], lastSeen) > 0, "the snapshot is newer than every delta before it");
        Hub.Host.MessageEvents.Publish(Event("m-final"));
        var next = await stalled.ReadUntilAsync(f => f.Topic == MessageEventsChannel.TopicName);
        Assert.Equal(("message_event", "m-final"), (next.Event, next.Json[4]!["message_id"]!.GetValue<string>()));
        await stopBeating.CancelAsync();
        await heartbeat;

        var metrics = await new HttpClient { BaseAddress = Hub.BaseUrl }.GetStringAsync("/metrics");
        var line = metrics.Split('\n').Single(l => l.StartsWith("parley_channel_resyncs_total ", StringComparison.Ordinal));
        Assert.True(double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 1, line);
        Assert.Contains("parley_slow_consumer_disconnects_total 0", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_rest_mirror_answers_while_streams_run_with_the_body_only_for_sender_recipients_and_admins()
    {
        var aliceToken = await TokenAsync("alice");
        var bobToken = await TokenAsync("bob");
        var carolToken = await TokenAsync("carol");
        await TokenAsync("dave");
        var alice = await ConnectAsync(aliceToken);
        await using var watcher = await StreamAsync(aliceToken);
        await ReadJsonAsync(watcher);
        var id = await DmAsync(alice, new { to = "bob,dave", body = SecretBody, correlation_id = "c-rest" });
        await ReadEventAsync(watcher, "sent");

        var asSender = await Id.CallAsync(HttpMethod.Get, $"/api/messages/{id}", bearer: aliceToken);
        Assert.Equal((SecretBody, "c-rest", "alice"), (asSender["body"]!.GetValue<string>(), asSender["correlation_id"]!.GetValue<string>(), asSender["from"]!.GetValue<string>()));
        Assert.Equal(["bob", "dave"], asSender["recipients"]!.AsArray().Select(r => r!["name"]!.GetValue<string>()));
        Assert.All(asSender["recipients"]!.AsArray(), r => Assert.Equal("queued", r!["state"]!.GetValue<string>()));

        var asBob = await Id.CallAsync(HttpMethod.Get, $"/api/messages/{id}", bearer: bobToken);
        Assert.Equal(SecretBody, asBob["body"]!.GetValue<string>());
        Assert.Equal(["bob"], asBob["recipients"]!.AsArray().Select(r => r!["name"]!.GetValue<string>())); // not dave's state

        var asAdmin = await Id.CallAsync(HttpMethod.Get, $"/api/messages/{id}");
        Assert.Equal(2, asAdmin["recipients"]!.AsArray().Count);

        var asCarol = await Id.CallAsync(HttpMethod.Get, $"/api/messages/{id}", bearer: carolToken, expect: HttpStatusCode.NotFound);
        Assert.Null(asCarol["body"]);
        await Id.CallAsync(HttpMethod.Get, "/api/messages/dm-unknown", bearer: aliceToken, expect: HttpStatusCode.NotFound);
        using var anonymous = new HttpClient { BaseAddress = Hub.BaseUrl };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/api/messages/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health")).StatusCode);

        // The stream is still live after the REST calls.
        await watcher.SendTextAsync("""{"type":"ping"}""");
        while ((await ReadJsonAsync(watcher))["type"]!.GetValue<string>() != "pong")
        {
        }
    }

    [Fact]
    public async Task The_phoenix_topic_gets_the_same_events_filtered_the_same_way()
    {
        var alice = await ConnectAsUserAsync("alice");
        await Id.RegisterAsync("bob");
        await Id.RegisterAsync("dave");
        var earlier = await DmAsync(alice, new { to = "bob", body = SecretBody });
        var admin = await ConnectAsync(Id.OwnerKey);
        Assert.True((await admin.JoinAsync("events:messages", joinParams: new JsonObject { ["instance"] = "bob" })).IsOk);
        var other = await ConnectAsync(Id.OwnerKey);
        Assert.Equal("invalid_topic", (await other.JoinAsync("events:messagesx")).Reason);
        Assert.Equal("invalid_payload", (await other.JoinAsync("events:messages", joinParams: new JsonObject { ["instance"] = 5 })).Reason);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var frames = new List<ClientMessage>();
        async Task<ClientMessage> NextAsync()
        {
            while (true)
            {
                var message = await admin.Messages.ReadAsync(timeout.Token);
                if (message.Topic == "events:messages")
                {
                    frames.Add(message);
                    return message;
                }
            }
        }

        var snapshot = await NextAsync();
        Assert.Equal("snapshot", snapshot.Event);
        Assert.Equal([earlier, earlier], snapshot.Payload.GetProperty("recent_events").EnumerateArray().Select(e => e.GetProperty("message_id").GetString()));

        await DmAsync(alice, new { to = "dave", body = SecretBody }); // filtered out
        var id = await DmAsync(alice, new { to = "bob", body = SecretBody, correlation_id = "p-1" });
        var sent = await NextAsync();
        Assert.Equal(("message_event", id, "sent", "p-1"), (sent.Event, sent.Payload.GetProperty("message_id").GetString(),
            sent.Payload.GetProperty("event").GetString(), sent.Payload.GetProperty("correlation_id").GetString()));
        Assert.Equal("queued", (await NextAsync()).Payload.GetProperty("event").GetString());
        Assert.All(frames, f => Assert.DoesNotContain(SecretBody, f.Payload.GetRawText(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_hand_over_the_store_cannot_record_is_a_failed_event_and_the_message_stays_queued_for_the_next_join()
    {
        var aliceToken = await TokenAsync("alice");
        var alice = await ConnectAsync(aliceToken);
        var bobToken = await TokenAsync("bob");
        var id = await DmAsync(alice, new { to = "bob", body = SecretBody, correlation_id = "fault-1" });
        await using var watcher = await StreamAsync(aliceToken, "correlation_id=fault-1");
        await ReadJsonAsync(watcher); // snapshot
        using var stopPinging = new CancellationTokenSource();
        var pinger = Task.Run(async () =>
        {
            while (!stopPinging.IsCancellationRequested)
            {
                await watcher.SendTextAsync("""{"type":"ping"}""");
                await Task.Delay(500);
            }
        });

        // Another process holds the inbox database's write lock: reads go on (WAL), the hand-over's write times out.
        await using (var locker = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(Hub.DataDir, "inbox.db")}"))
        {
            await locker.OpenAsync();
            await using (var begin = locker.CreateCommand())
            {
                begin.CommandText = "BEGIN EXCLUSIVE;";
                await begin.ExecuteNonQueryAsync();
            }
            var bob = await ConnectAsync(bobToken);
            Assert.True((await bob.JoinAsync("user:bob")).IsOk);
            var failed = await ReadEventAsync(watcher, "failed", timeout: TimeSpan.FromSeconds(20));
            Assert.Equal((id, "bob"), (failed["message_id"]!.GetValue<string>(), failed["to"]!.GetValue<string>()));
            Assert.DoesNotContain(SecretBody, failed.ToJsonString(), StringComparison.Ordinal);
            await DropAsync(bob);
            await using var rollback = locker.CreateCommand();
            rollback.CommandText = "ROLLBACK;";
            await rollback.ExecuteNonQueryAsync();
        }

        // The store works again: the next join hands it over, and it is delivered exactly then.
        var again = await ConnectAsync(bobToken);
        Assert.True((await again.JoinAsync("user:bob")).IsOk);
        var delivered = await ReadEventAsync(watcher, "delivered", timeout: TimeSpan.FromSeconds(10));
        Assert.Equal(id, delivered["message_id"]!.GetValue<string>());
        await stopPinging.CancelAsync();
        await pinger;
    }
}
