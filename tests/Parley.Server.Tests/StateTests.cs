using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Shared state (<c>state:</c> topics) on a real hub with identity on: snapshots, changes, compare-and-set, limits, permissions.</summary>
public sealed class StateTests : AuthenticatedHubTest
{
    // Frames bigger than a 64 KiB value, so the value limit itself is what refuses one.
    protected override void Configure(Parley.Hub.HubOptions options) => options.MaxFrameBytes = 256 * 1024;

    [Fact]
    public async Task A_snapshot_and_the_changes_after_it_neither_miss_nor_repeat_a_write_under_concurrent_writers()
    {
        const int writers = 3, writesEach = 150;
        var clients = new List<ParleyClient>();
        for (var i = 0; i < writers; i++)
        {
            var writer = await ConnectAsync(Id.OwnerKey);
            Assert.True((await writer.JoinAsync("state:board")).IsOk);
            clients.Add(writer);
        }
        var acked = 0;
        var writing = clients.Select((writer, w) => Task.Run(async () =>
        {
            for (var j = 0; j < writesEach; j++)
            {
                var reply = await writer.PushAsync("state:board", "set", new { key = $"w{w}/k{j % 7}", value = new { w, j } });
                Assert.True(reply.IsOk, reply.Response.ToString());
                Interlocked.Increment(ref acked);
            }
        })).ToList();

        // Join while the writers are busy: the snapshot is at some revision R in the middle.
        using (var started = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            while (Volatile.Read(ref acked) < 30)
            {
                await Task.Delay(5, started.Token);
            }
        }
        var watcher = await ConnectAsync(Id.OwnerKey);
        var joined = await watcher.JoinAsync("state:board");
        Assert.True(joined.IsOk);
        var revision = joined.Response.GetProperty("revision").GetInt64();
        var state = new Dictionary<string, (long Version, string Value)>();
        foreach (var entry in joined.Response.GetProperty("entries").EnumerateArray())
        {
            state[entry.GetProperty("key").GetString()!] = (entry.GetProperty("version").GetInt64(), entry.GetProperty("value").GetRawText());
        }
        await Task.WhenAll(writing);
        Assert.InRange(revision, 30, writers * writesEach); // joined after the first writes (mid-stream unless the writers finished first)

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (revision < writers * writesEach)
        {
            var message = await watcher.Messages.ReadAsync(timeout.Token);
            Assert.Equal("state_change", message.Event);
            var change = message.Payload;
            Assert.Equal(revision + 1, change.GetProperty("revision").GetInt64()); // no gap, no repeat
            revision++;
            Assert.Equal("set", change.GetProperty("op").GetString());
            state[change.GetProperty("key").GetString()!] = (change.GetProperty("version").GetInt64(), change.GetProperty("value").GetRawText());
        }

        var listed = await watcher.PushAsync("state:board", "list", new { });
        Assert.Equal(writers * writesEach, listed.Response.GetProperty("revision").GetInt64());
        var final = listed.Response.GetProperty("entries").EnumerateArray()
            .ToDictionary(e => e.GetProperty("key").GetString()!, e => (e.GetProperty("version").GetInt64(), e.GetProperty("value").GetRawText()));
        Assert.Equal(writers * 7, final.Count);
        Assert.Equal(final.OrderBy(p => p.Key), state.OrderBy(p => p.Key)); // snapshot + changes = the store
    }

    [Fact]
    public async Task Compare_and_set_rejects_a_stale_version_and_bad_input_gets_a_reason()
    {
        var client = await ConnectAsync(Id.OwnerKey);
        Assert.True((await client.JoinAsync("state:cas")).IsOk);

        var created = await client.PushAsync("state:cas", "set", new { key = "leader", value = "alice", expected_version = 0 });
        Assert.Equal(1, created.Response.GetProperty("version").GetInt64());
        var taken = await client.PushAsync("state:cas", "set", new { key = "leader", value = "bob", expected_version = 0 });
        Assert.Equal("version_conflict", taken.Reason);
        Assert.True((await client.PushAsync("state:cas", "set", new { key = "leader", value = "carol", expected_version = 1 })).IsOk);
        var stale = await client.PushAsync("state:cas", "set", new { key = "leader", value = "dave", expected_version = 1 });
        Assert.Equal("version_conflict", stale.Reason);
        Assert.Contains("version 2", stale.Response.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var got = await client.PushAsync("state:cas", "get", new { key = "leader" });
        Assert.Equal("carol", got.Response.GetProperty("value").GetString());
        var owner = (await Id.CallAsync(HttpMethod.Get, "/api/whoami", bearer: Id.OwnerKey))["name"]!.GetValue<string>();
        Assert.Equal(owner, got.Response.GetProperty("author").GetString());
        Assert.Equal(2, got.Response.GetProperty("version").GetInt64());

        Assert.Equal("version_conflict", (await client.PushAsync("state:cas", "delete", new { key = "leader", expected_version = 1 })).Reason);
        Assert.True((await client.PushAsync("state:cas", "delete", new { key = "leader", expected_version = 2 })).IsOk);
        Assert.Equal("not_found", (await client.PushAsync("state:cas", "get", new { key = "leader" })).Reason);
        Assert.Equal("not_found", (await client.PushAsync("state:cas", "delete", new { key = "leader" })).Reason);

        Assert.Equal("invalid_payload", (await client.PushAsync("state:cas", "set", new { key = "has space", value = 1 })).Reason);
        Assert.Equal("invalid_payload", (await client.PushAsync("state:cas", "set", new { key = "k" })).Reason);
        Assert.Equal("invalid_payload", (await client.PushAsync("state:cas", "set", new { key = "k", value = 1, expected_version = -1 })).Reason);
        Assert.True((await client.PushAsync("state:cas", "set", new { key = "big", value = new string('x', 60 * 1024) })).IsOk);
        Assert.Equal("too_large", (await client.PushAsync("state:cas", "set", new { key = "k", value = new string('x', 70 * 1024) })).Reason);
        Assert.Equal("unknown_event", (await client.PushAsync("state:cas", "increment", new { key = "k" })).Reason);
        Assert.Equal("invalid_topic", (await client.JoinAsync("state:bad name")).Reason);

        // The socket is still fine after all of that.
        Assert.True((await client.PushAsync("state:cas", "set", new { key = "k", value = new { ok = true } })).IsOk);
    }

    [Fact]
    public async Task Guests_only_read_and_non_members_cannot_watch_a_private_namespace()
    {
        var mia = await TokenAsync("mia");
        await Id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "state:secret", @private = true }, bearer: mia, expect: HttpStatusCode.Created);
        var miaClient = await ConnectAsync(mia);
        Assert.True((await miaClient.JoinAsync("state:secret")).IsOk);
        Assert.True((await miaClient.PushAsync("state:secret", "set", new { key = "plan", value = "ship" })).IsOk);

        var bob = await ConnectAsync(await TokenAsync("bob"));
        Assert.Equal("forbidden", (await bob.JoinAsync("state:secret")).Reason);

        var gina = await ConnectAsync(await TokenAsync("gina", "guest"));
        var open = await gina.JoinAsync("state:open");
        Assert.True(open.IsOk);
        Assert.Equal("forbidden", (await gina.PushAsync("state:open", "set", new { key = "k", value = 1 })).Reason);
        Assert.Equal("forbidden", (await gina.PushAsync("state:open", "delete", new { key = "k" })).Reason);
        Assert.Equal("not_found", (await gina.PushAsync("state:open", "get", new { key = "k" })).Reason); // reading is allowed

        await Id.CallAsync(HttpMethod.Post, "/api/channels/state:secret/members", new { user = "bob" }, bearer: mia);
        var bobJoin = await bob.JoinAsync("state:secret");
        Assert.True(bobJoin.IsOk);
        Assert.Equal("ship", bobJoin.Response.GetProperty("entries")[0].GetProperty("value").GetString());
        await Id.CallAsync(HttpMethod.Post, "/api/channels/state:secret/rename", new { topic = "state:other" }, bearer: mia, expect: HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task State_survives_a_hub_restart()
    {
        var client = await ConnectAsync(Id.OwnerKey);
        Assert.True((await client.JoinAsync("state:durable")).IsOk);
        Assert.True((await client.PushAsync("state:durable", "set", new { key = "build", value = new { green = true } })).IsOk);
        await DropAsync(client);

        await RestartHubAsync();
        var again = await ConnectAsync(Id.OwnerKey);
        var joined = await again.JoinAsync("state:durable");
        Assert.Equal(1, joined.Response.GetProperty("revision").GetInt64());
        var entry = joined.Response.GetProperty("entries")[0];
        Assert.True(JsonNode.Parse(entry.GetProperty("value").GetRawText())!["green"]!.GetValue<bool>());
        Assert.Equal(JsonValueKind.Number, entry.GetProperty("updated_at").ValueKind);
    }
}
