using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Log tails of fleet instances: <c>logs:&lt;name&gt;</c>, <c>/ws/instances/&lt;name&gt;/logs</c> and the REST mirror, with real child processes.</summary>
public sealed class LogTailTests : AuthenticatedHubTest
{
    // Small log files so a chatty instance rotates within a test.
    protected override void ConfigureServer(ServerOptions options) => options.Fleet.LogMaxBytes = 4096;

    private async Task StartTalkerAsync(string name)
    {
        await Id.CallAsync(HttpMethod.Post, "/api/instances", new
        {
            name,
            command = "/bin/sh",
            args = new[] { "-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); sleep 0.02; done" },
            start = true,
        }, expect: HttpStatusCode.Created);
    }

    private static async Task<ClientMessage> NextAsync(ParleyClient client, string @event, TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        while (true)
        {
            var message = await client.Messages.ReadAsync(timeout.Token);
            if (message.Event == @event)
            {
                return message;
            }
        }
    }

    private static List<string> Lines(JsonElement payload) => [.. payload.GetProperty("lines").EnumerateArray().Select(l => l.GetString()!)];

    [Fact]
    public async Task A_phoenix_watcher_gets_its_backlog_then_new_lines_within_a_second_then_rotations()
    {
        await StartTalkerAsync("talker");
        await Task.Delay(500); // some backlog
        var watcher = await ConnectAsUserAsync("mia");
        var joined = await watcher.JoinAsync("logs:talker", joinParams: new JsonObject { ["backlog"] = 5 });
        Assert.True(joined.IsOk, joined.Response.ToString());

        var backlog = (await NextAsync(watcher, "backlog", TimeSpan.FromSeconds(2))).Payload;
        var old = Lines(backlog);
        Assert.Equal(5, backlog.GetProperty("count").GetInt32());
        Assert.Equal(5, old.Count);
        Assert.All(old, l => Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout|hub) ", l));

        var clock = Stopwatch.StartNew();
        var fresh = Lines((await NextAsync(watcher, "lines", TimeSpan.FromSeconds(1))).Payload);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1));
        Assert.Contains(fresh, l => l.Contains(" stdout line-", StringComparison.Ordinal));
        Assert.DoesNotContain(fresh, old.Contains); // nothing repeated between backlog and live

        await NextAsync(watcher, "rotated", TimeSpan.FromSeconds(10)); // 4 KiB files rotate every ~100 lines
        Assert.True((await NextAsync(watcher, "lines", TimeSpan.FromSeconds(2))).Payload.GetProperty("count").GetInt32() > 0);

        Assert.Equal("instance_not_found", (await watcher.JoinAsync("logs:nobody")).Reason);
        Assert.Equal("invalid_payload", (await watcher.JoinAsync("logs:talker2", joinParams: new JsonObject { ["backlog"] = 5000 })).Reason);
    }

    [Fact]
    public async Task The_plain_log_stream_and_the_rest_mirror_serve_the_same_lines()
    {
        await StartTalkerAsync("chatty");
        await Task.Delay(500);
        var token = await TokenAsync("ops");
        await using var socket = await RawWebSocket.ConnectAsync(Hub.BaseUrl, "/ws/instances/chatty/logs?backlog=3&token=" + Uri.EscapeDataString(token), subprotocols: null);
        var first = JsonNode.Parse((await socket.ReadFrameAsync(TimeSpan.FromSeconds(5))).Text)!;
        Assert.Equal("backlog", first["type"]!.GetValue<string>());
        Assert.Equal(3, first["count"]!.GetValue<int>());
        JsonNode next;
        do
        {
            next = JsonNode.Parse((await socket.ReadFrameAsync(TimeSpan.FromSeconds(2))).Text)!;
        }
        while (next["type"]!.GetValue<string>() != "lines");
        Assert.True(next["count"]!.GetValue<int>() >= 1);

        var rest = await Id.CallAsync(HttpMethod.Get, "/api/instances/chatty/logs?tail=2", bearer: token);
        Assert.Equal(2, rest["count"]!.GetValue<int>());
        Assert.Contains("line-", rest["lines"]![1]!.GetValue<string>(), StringComparison.Ordinal);
        await Id.CallAsync(HttpMethod.Get, "/api/instances/nobody/logs", bearer: token, expect: HttpStatusCode.NotFound);

        await using var missing = await RawWebSocket.ConnectAsync(Hub.BaseUrl, "/ws/instances/nobody/logs?token=" + Uri.EscapeDataString(token), subprotocols: null);
        Assert.Equal("not_found", JsonNode.Parse((await missing.ReadFrameAsync(TimeSpan.FromSeconds(5))).Text)!["code"]!.GetValue<string>());
        Assert.Equal(4404, (await missing.ReadCloseAsync(TimeSpan.FromSeconds(5))).CloseCode);
        await using var bad = await RawWebSocket.ConnectAsync(Hub.BaseUrl, "/ws/instances/chatty/logs?backlog=lots&token=" + Uri.EscapeDataString(token), subprotocols: null);
        Assert.Equal("bad_params", JsonNode.Parse((await bad.ReadFrameAsync(TimeSpan.FromSeconds(5))).Text)!["code"]!.GetValue<string>());
        Assert.Equal(4400, (await bad.ReadCloseAsync(TimeSpan.FromSeconds(5))).CloseCode);
    }

    [Fact]
    public async Task Deleting_an_instance_ends_its_tails()
    {
        await StartTalkerAsync("brief");
        var watcher = await ConnectAsUserAsync("mia");
        Assert.True((await watcher.JoinAsync("logs:brief")).IsOk);
        await Id.CallAsync(HttpMethod.Post, "/api/instances/brief/stop");
        await Id.CallAsync(HttpMethod.Delete, "/api/instances/brief");
        var closed = await NextAsync(watcher, "phx_close", TimeSpan.FromSeconds(5));
        Assert.Equal("logs:brief", closed.Topic);
    }
}
