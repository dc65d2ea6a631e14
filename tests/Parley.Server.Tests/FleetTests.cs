using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Hub.Fleet;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary><c>fleet:instances</c>, the fleet HTTP API and the <c>fleet.*</c> lobby commands on a real hub with identity on.</summary>
public sealed class FleetTests : AuthenticatedHubTest
{
    private const string Topic = "fleet:instances";
    private static readonly TimeSpan Delta = TimeSpan.FromSeconds(1);

    private static object Sleeper(string name, object? env = null, bool start = false) =>
        new { name, command = "/bin/sh", args = new[] { "-c", "exec sleep 30" }, env = env ?? new { }, restart = "on-failure", port = 18801, start };

    private Task<JsonNode> Api(HttpMethod method, string path, object? body = null, HttpStatusCode expect = HttpStatusCode.OK, string? bearer = null) =>
        Id.CallAsync(method, path, body, bearer, expect);

    // The next fleet event matching the filter, within a second; other fleet events are skipped.
    private static async Task<ClientMessage> NextAsync(ParleyClient client, string @event, string name, string? status = null)
    {
        using var timeout = new CancellationTokenSource(Delta);
        while (true)
        {
            var message = await client.Messages.ReadAsync(timeout.Token);
            if (message.Topic == Topic && message.Event == @event && message.Payload.GetProperty("name").GetString() == name
                && (status is null || message.Payload.GetProperty("status").GetString() == status))
            {
                return message;
            }
        }
    }

    private static async Task<JsonElement> JoinAsync(ParleyClient client, bool? includeArchived = null)
    {
        var reply = await client.JoinAsync(Topic, joinParams: includeArchived is { } b ? new JsonObject { ["include_archived"] = b } : null);
        Assert.True(reply.IsOk, reply.Response.ToString());
        return reply.Response;
    }

    private static string[] Names(JsonElement snapshot) => [.. snapshot.GetProperty("instances").EnumerateArray().Select(i => i.GetProperty("name").GetString()!)];

    [Fact]
    public async Task A_watcher_gets_a_snapshot_then_a_delta_within_a_second_of_every_lifecycle_operation()
    {
        await Api(HttpMethod.Post, "/api/instances", Sleeper("agent-1"), HttpStatusCode.Created);
        var watcher = await ConnectAsUserAsync("mia");
        var snapshot = await JoinAsync(watcher);
        Assert.False(snapshot.GetProperty("include_archived").GetBoolean());
        var first = Assert.Single(snapshot.GetProperty("instances").EnumerateArray());
        Assert.Equal(("agent-1", "stopped", 18801), (first.GetProperty("name").GetString(), first.GetProperty("status").GetString(), first.GetProperty("port").GetInt32()));

        await Api(HttpMethod.Post, "/api/instances", Sleeper("agent-2"), HttpStatusCode.Created);
        var made = await NextAsync(watcher, "instance_created", "agent-2");
        Assert.Equal("stopped", made.Payload.GetProperty("status").GetString());
        Assert.Equal(18801, made.Payload.GetProperty("instance").GetProperty("port").GetInt32());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", made.Payload.GetProperty("timestamp").GetString());

        var started = await Api(HttpMethod.Post, "/api/instances/agent-2/start");
        Assert.Equal("running", started["status"]!.GetValue<string>());
        var running = await NextAsync(watcher, "status_changed", "agent-2", "running");
        Assert.Equal(started["pid"]!.GetValue<int>(), running.Payload.GetProperty("pid").GetInt32());

        await Api(HttpMethod.Post, "/api/instances/agent-2/restart");
        await NextAsync(watcher, "status_changed", "agent-2", "stopping");
        await NextAsync(watcher, "status_changed", "agent-2", "running");

        var stopped = await Api(HttpMethod.Post, "/api/instances/agent-2/stop");
        Assert.Equal("stopped", stopped["status"]!.GetValue<string>());
        Assert.Equal(15, stopped["signal"]!.GetValue<int>()); // sleep died of SIGTERM
        await NextAsync(watcher, "status_changed", "agent-2", "stopped");

        var clone = await Api(HttpMethod.Post, "/api/instances/agent-2/clone", new { name = "agent-3" }, HttpStatusCode.Created);
        Assert.Equal("stopped", clone["status"]!.GetValue<string>());
        Assert.Equal("on-failure", clone["restart"]!.GetValue<string>());
        await NextAsync(watcher, "instance_created", "agent-3");

        await Api(HttpMethod.Post, "/api/instances/agent-3/archive");
        await NextAsync(watcher, "instance_archived", "agent-3");
        await Api(HttpMethod.Post, "/api/instances/agent-3/unarchive");
        var back = await NextAsync(watcher, "instance_unarchived", "agent-3");
        Assert.False(back.Payload.GetProperty("instance").GetProperty("archived").GetBoolean());
        await Api(HttpMethod.Delete, "/api/instances/agent-3");
        await NextAsync(watcher, "instance_deleted", "agent-3");

        // The same through hub:lobby, as an admin socket.
        var admin = await ConnectAsync(Id.OwnerKey);
        Assert.True((await admin.JoinAsync("hub:lobby")).IsOk);
        var lobbyStart = await admin.PushAsync("hub:lobby", "fleet.start", new { name = "agent-1" });
        Assert.True(lobbyStart.IsOk, lobbyStart.Response.ToString());
        await NextAsync(watcher, "status_changed", "agent-1", "running");
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.stop", new { name = "agent-1" })).IsOk);
        await NextAsync(watcher, "status_changed", "agent-1", "stopped");
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.create", Sleeper("agent-4"))).IsOk);
        await NextAsync(watcher, "instance_created", "agent-4");
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.clone", new { name = "agent-4", new_name = "agent-5" })).IsOk);
        await NextAsync(watcher, "instance_created", "agent-5");
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.archive", new { name = "agent-5" })).IsOk);
        await NextAsync(watcher, "instance_archived", "agent-5");
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.unarchive", new { name = "agent-5" })).IsOk);
        await NextAsync(watcher, "instance_unarchived", "agent-5");
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.restart", new { name = "agent-5" })).IsOk);
        await NextAsync(watcher, "status_changed", "agent-5", "running");
        var busy = await admin.PushAsync("hub:lobby", "fleet.delete", new { name = "agent-5" });
        Assert.Equal(FleetErrors.Running, busy.Reason);
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.stop", new { name = "agent-5" })).IsOk);
        Assert.True((await admin.PushAsync("hub:lobby", "fleet.delete", new { name = "agent-5" })).IsOk);
        await NextAsync(watcher, "instance_deleted", "agent-5");
        var listed = await admin.PushAsync("hub:lobby", "fleet.list", new { });
        Assert.Equal(["agent-1", "agent-2", "agent-4"], Names(listed.Response));
        Assert.Equal(FleetErrors.NotFound, (await admin.PushAsync("hub:lobby", "fleet.get", new { name = "nope" })).Reason);
        Assert.Equal(FleetErrors.Exists, (await admin.PushAsync("hub:lobby", "fleet.create", Sleeper("agent-4"))).Reason);
    }

    [Fact]
    public async Task Archived_instances_are_hidden_unless_asked_for_and_set_include_archived_answers_with_a_snapshot()
    {
        await Api(HttpMethod.Post, "/api/instances", Sleeper("alpha"), HttpStatusCode.Created);
        await Api(HttpMethod.Post, "/api/instances", Sleeper("beta"), HttpStatusCode.Created);
        await Api(HttpMethod.Post, "/api/instances/beta/archive");
        var plain = await ConnectAsUserAsync("mia");
        var all = await ConnectAsUserAsync("ned");
        Assert.Equal(["alpha"], Names(await JoinAsync(plain)));
        var full = await JoinAsync(all, includeArchived: true);
        Assert.Equal(["alpha", "beta"], Names(full));
        Assert.True(full.GetProperty("include_archived").GetBoolean());
        Assert.Equal(["alpha"], Names(JsonDocument.Parse((await Api(HttpMethod.Get, "/api/instances")).ToJsonString()).RootElement));
        Assert.Equal(["alpha", "beta"], Names(JsonDocument.Parse((await Api(HttpMethod.Get, "/api/instances?include_archived=true")).ToJsonString()).RootElement));
        Assert.Equal("instance_archived", (await Api(HttpMethod.Post, "/api/instances/beta/start", expect: HttpStatusCode.Conflict))["error"]!.GetValue<string>());

        // An archived instance's deletion reaches only the watcher that sees archived instances.
        await Api(HttpMethod.Delete, "/api/instances/beta");
        await NextAsync(all, "instance_deleted", "beta");
        await Api(HttpMethod.Post, "/api/instances/alpha/archive");
        await NextAsync(plain, "instance_archived", "alpha"); // everyone hears of the archive itself
        await NextAsync(all, "instance_archived", "alpha");
        Assert.False(plain.Messages.TryRead(out var stray) && stray.Event == "instance_deleted", "the plain watcher heard of beta");

        var toggled = await plain.PushAsync(Topic, "set_include_archived", new { include_archived = true });
        Assert.True(toggled.IsOk);
        Assert.Equal(["alpha"], Names(toggled.Response));
        Assert.True(toggled.Response.GetProperty("include_archived").GetBoolean());
        Assert.True(toggled.Response.GetProperty("instances")[0].GetProperty("archived").GetBoolean());
        await Api(HttpMethod.Post, "/api/instances/alpha/unarchive");
        await NextAsync(plain, "instance_unarchived", "alpha");
        Assert.Equal(["alpha"], Names((await plain.PushAsync(Topic, "set_include_archived", new { include_archived = false })).Response));
        Assert.Equal("invalid_payload", (await plain.PushAsync(Topic, "set_include_archived", new { include_archived = "yes" })).Reason);
        Assert.Equal("unknown_event", (await plain.PushAsync(Topic, "start", new { name = "alpha" })).Reason);
    }

    [Fact]
    public async Task Non_admins_may_watch_but_lifecycle_operations_are_refused()
    {
        await Api(HttpMethod.Post, "/api/instances", Sleeper("guarded"), HttpStatusCode.Created);
        var member = await TokenAsync("mia");
        Assert.Equal("forbidden", (await Api(HttpMethod.Post, "/api/instances", Sleeper("mine"), HttpStatusCode.Forbidden, member))["error"]!.GetValue<string>());
        foreach (var action in new[] { "start", "stop", "restart", "archive", "unarchive" })
        {
            Assert.Equal("forbidden", (await Api(HttpMethod.Post, $"/api/instances/guarded/{action}", null, HttpStatusCode.Forbidden, member))["error"]!.GetValue<string>());
        }
        await Api(HttpMethod.Post, "/api/instances/guarded/clone", new { name = "copy" }, HttpStatusCode.Forbidden, member);
        await Api(HttpMethod.Delete, "/api/instances/guarded", null, HttpStatusCode.Forbidden, member);
        Assert.Equal("guarded", (await Api(HttpMethod.Get, "/api/instances/guarded", bearer: member))["name"]!.GetValue<string>());
        await Api(HttpMethod.Get, "/api/instances/missing", expect: HttpStatusCode.NotFound, bearer: member);

        var socket = await ConnectAsync(member);
        Assert.True((await socket.JoinAsync("hub:lobby")).IsOk);
        Assert.Equal("forbidden", (await socket.PushAsync("hub:lobby", "fleet.start", new { name = "guarded" })).Reason);
        Assert.Equal("forbidden", (await socket.PushAsync("hub:lobby", "fleet.create", Sleeper("mine"))).Reason);
        var guest = await ConnectAsUserAsync("gina", "guest");
        Assert.Equal(["guarded"], Names(await JoinAsync(guest)));

        var bad = await Api(HttpMethod.Post, "/api/instances", new { name = "ok-name", command = "/bin/true", port = 70000 }, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_instance", bad["error"]!.GetValue<string>());
        Assert.StartsWith("port:", bad["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.StartsWith("name:", (await Api(HttpMethod.Post, "/api/instances", new { name = "Bad!", command = "/bin/true" }, HttpStatusCode.BadRequest))["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.StartsWith("env:", (await Api(HttpMethod.Post, "/api/instances", new { name = "e", command = "/bin/true", env = new Dictionary<string, string> { ["1X"] = "v" } }, HttpStatusCode.BadRequest))["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("instance_exists", (await Api(HttpMethod.Post, "/api/instances", Sleeper("guarded"), HttpStatusCode.Conflict))["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Environment_values_never_reach_watchers_or_the_api()
    {
        const string secret = "hunter2-very-secret";
        var watcher = await ConnectAsUserAsync("mia");
        await JoinAsync(watcher);
        var created = await Api(HttpMethod.Post, "/api/instances", Sleeper("keeper", env: new Dictionary<string, string> { ["API_TOKEN"] = secret, ["MODE"] = "fast" }, start: true), HttpStatusCode.Created);
        Assert.DoesNotContain(secret, created.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(["API_TOKEN", "MODE"], created["env_keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        var made = await NextAsync(watcher, "instance_created", "keeper");
        var running = await NextAsync(watcher, "status_changed", "keeper", "running");
        Assert.DoesNotContain(secret, made.Payload.GetRawText(), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, running.Payload.GetRawText(), StringComparison.Ordinal);
        Assert.DoesNotContain("fast", running.Payload.GetRawText(), StringComparison.Ordinal);
        var late = await ConnectAsUserAsync("ned");
        Assert.DoesNotContain(secret, (await JoinAsync(late)).GetRawText(), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, (await Api(HttpMethod.Get, "/api/instances")).ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, (await Api(HttpMethod.Get, "/api/instances/keeper")).ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Instances_marked_running_come_back_after_a_hub_restart()
    {
        var started = await Api(HttpMethod.Post, "/api/instances", Sleeper("survivor", start: true), HttpStatusCode.Created);
        var firstPid = started["pid"]!.GetValue<int>();
        await Api(HttpMethod.Post, "/api/instances", Sleeper("resting"), HttpStatusCode.Created);
        await Api(HttpMethod.Post, "/api/instances", Sleeper("shelved", start: true), HttpStatusCode.Created);
        await Api(HttpMethod.Post, "/api/instances/shelved/archive");

        await RestartHubAsync();
        var fleet = Hub.Host.Fleet;
        var survivor = await fleet.GetAsync("survivor");
        Assert.Equal(InstanceStatus.Running, survivor.Runtime.Status);
        Assert.NotEqual(firstPid, survivor.Runtime.Pid);
        Assert.Throws<ArgumentException>(() => System.Diagnostics.Process.GetProcessById(firstPid)); // stopped with the old hub
        Assert.Equal(InstanceStatus.Stopped, (await fleet.GetAsync("resting")).Runtime.Status);
        Assert.Equal(InstanceStatus.Stopped, (await fleet.GetAsync("shelved")).Runtime.Status);
        Assert.True(File.Exists(Path.Combine(Hub.DataDir, "fleet.db")));
    }

    [Fact]
    public async Task The_plain_instances_stream_gets_a_snapshot_then_the_same_deltas_and_can_change_its_filter()
    {
        await Api(HttpMethod.Post, "/api/instances", Sleeper("web-1"), HttpStatusCode.Created);
        await Api(HttpMethod.Post, "/api/instances", Sleeper("old-1"), HttpStatusCode.Created);
        await Api(HttpMethod.Post, "/api/instances/old-1/archive");
        var token = await TokenAsync("watcher");
        await using var socket = await RawWebSocket.ConnectAsync(Hub.BaseUrl, "/ws/instances?token=" + Uri.EscapeDataString(token), subprotocols: null);

        async Task<JsonObject> NextFrameAsync(string type)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            while (true)
            {
                var frame = await socket.ReadFrameAsync(TimeSpan.FromSeconds(5));
                Assert.False(frame.IsClose, $"closed: {frame.CloseCode} {frame.CloseReason}");
                var json = JsonNode.Parse(frame.Text)!.AsObject();
                if (json["type"]!.GetValue<string>() == type)
                {
                    return json;
                }
            }
        }

        var snapshot = await NextFrameAsync("snapshot");
        Assert.Equal(["web-1"], snapshot["instances"]!.AsArray().Select(i => i!["name"]!.GetValue<string>()));
        Assert.False(snapshot["include_archived"]!.GetValue<bool>());

        var started = Stopwatch.StartNew();
        await Api(HttpMethod.Post, "/api/instances/web-1/start");
        JsonObject change;
        do
        {
            change = await NextFrameAsync("status_changed");
        }
        while (change["status"]!.GetValue<string>() != "running");
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(2), $"the running delta took {started.Elapsed}");
        Assert.Equal("web-1", change["name"]!.GetValue<string>());
        Assert.True(change["pid"]!.GetValue<int>() > 0);

        await socket.SendTextAsync("{\"type\":\"set_include_archived\",\"value\":true}");
        var all = await NextFrameAsync("snapshot");
        Assert.Equal(["old-1", "web-1"], all["instances"]!.AsArray().Select(i => i!["name"]!.GetValue<string>()).Order());
        await Api(HttpMethod.Post, "/api/instances/web-1/stop");

        await using var bad = await RawWebSocket.ConnectAsync(Hub.BaseUrl, "/ws/instances?token=" + Uri.EscapeDataString(token) + "&include_archived=maybe", subprotocols: null);
        var error = JsonNode.Parse((await bad.ReadFrameAsync(TimeSpan.FromSeconds(5))).Text)!;
        Assert.Equal("bad_params", error["code"]!.GetValue<string>());
        Assert.Equal(4400, (await bad.ReadCloseAsync(TimeSpan.FromSeconds(5))).CloseCode);
    }
}
