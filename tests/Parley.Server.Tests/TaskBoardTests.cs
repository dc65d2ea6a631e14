using System.Net;
using System.Text.Json;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Task boards (<c>tasks:</c> topics) on a real hub with identity on: atomic claims, transitions, events, filters, permissions.</summary>
public sealed class TaskBoardTests : AuthenticatedHubTest
{
    private static async Task<JsonElement> OkAsync(ParleyClient client, string topic, string @event, object payload)
    {
        var reply = await client.PushAsync(topic, @event, payload);
        Assert.True(reply.IsOk, $"{@event}: {reply.Response}");
        return reply.Response;
    }

    [Fact]
    public async Task Racing_claims_have_one_winner_and_every_change_is_an_event_in_revision_order()
    {
        var lead = await ConnectAsUserAsync("lead");
        var joined = await lead.JoinAsync("tasks:hub");
        Assert.True(joined.IsOk);
        var revision = joined.Response.GetProperty("revision").GetInt64();
        var task = await OkAsync(lead, "tasks:hub", "create", new { title = "fix the flaky test", tags = new[] { "ci" } });
        var id = task.GetProperty("id").GetString()!;
        Assert.Equal("open", task.GetProperty("status").GetString());
        Assert.Equal("next", task.GetProperty("priority").GetString());
        Assert.Equal("lead", task.GetProperty("created_by").GetString());

        var racers = new List<ParleyClient>();
        for (var i = 0; i < 5; i++)
        {
            var racer = await ConnectAsUserAsync($"racer{i}");
            Assert.True((await racer.JoinAsync("tasks:hub")).IsOk);
            racers.Add(racer);
        }
        var claims = await Task.WhenAll(racers.Select(r => r.PushAsync("tasks:hub", "claim", new { id })));
        var winner = Assert.Single(claims, c => c.IsOk);
        Assert.All(claims.Where(c => !c.IsOk), c => Assert.Equal("already_claimed", c.Reason));
        var claimedBy = winner.Response.GetProperty("claimed_by").GetString()!;
        var winnerClient = racers[Array.IndexOf(claims, winner)];

        var loser = racers.First(r => r != winnerClient);
        Assert.Equal("forbidden", (await loser.PushAsync("tasks:hub", "complete", new { id })).Reason);
        Assert.Equal("forbidden", (await loser.PushAsync("tasks:hub", "release", new { id })).Reason);
        var done = await OkAsync(winnerClient, "tasks:hub", "complete", new { id, result = "quarantined and fixed" });
        Assert.Equal("done", done.GetProperty("status").GetString());
        Assert.Equal("quarantined and fixed", done.GetProperty("result").GetString());
        Assert.Equal("already_claimed", (await loser.PushAsync("tasks:hub", "claim", new { id })).Reason);

        // The first subscriber saw created, claimed (once), completed — consecutive revisions.
        var ops = new List<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (ops.Count < 3)
        {
            var message = await lead.Messages.ReadAsync(timeout.Token);
            Assert.Equal("task_change", message.Event);
            Assert.Equal(++revision, message.Payload.GetProperty("revision").GetInt64());
            Assert.Equal(id, message.Payload.GetProperty("task").GetProperty("id").GetString());
            ops.Add(message.Payload.GetProperty("op").GetString()!);
        }
        Assert.Equal(["created", "claimed", "completed"], ops);
        Assert.False(lead.Messages.TryRead(out _)); // the four lost claims changed nothing
        Assert.StartsWith("racer", claimedBy, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Release_reopens_a_task_list_filters_and_bad_input_gets_a_reason()
    {
        var ana = await ConnectAsUserAsync("ana");
        Assert.True((await ana.JoinAsync("tasks:ops")).IsOk);
        var a = (await OkAsync(ana, "tasks:ops", "create", new { title = "rotate keys", priority = "now", assignee = "ana", tags = new[] { "security" } })).GetProperty("id").GetString();
        await OkAsync(ana, "tasks:ops", "create", new { title = "write docs", priority = "low" });
        await OkAsync(ana, "tasks:ops", "claim", new { id = a });
        var released = await OkAsync(ana, "tasks:ops", "release", new { id = a });
        Assert.Equal("open", released.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, released.GetProperty("claimed_by").ValueKind);
        Assert.Equal(3, released.GetProperty("version").GetInt64());

        static int Count(JsonElement list) => list.GetProperty("tasks").GetArrayLength();
        Assert.Equal(2, Count(await OkAsync(ana, "tasks:ops", "list", new { })));
        Assert.Equal(1, Count(await OkAsync(ana, "tasks:ops", "list", new { priority = "now" })));
        Assert.Equal(1, Count(await OkAsync(ana, "tasks:ops", "list", new { tag = "security", assignee = "ana" })));
        Assert.Equal(0, Count(await OkAsync(ana, "tasks:ops", "list", new { status = "done" })));

        Assert.Equal("invalid_payload", (await ana.PushAsync("tasks:ops", "create", new { body = "no title" })).Reason);
        Assert.Equal("invalid_payload", (await ana.PushAsync("tasks:ops", "create", new { title = "x", priority = "urgent" })).Reason);
        Assert.Equal("invalid_payload", (await ana.PushAsync("tasks:ops", "create", new { title = "x", tags = new[] { "Not OK" } })).Reason);
        Assert.Equal("invalid_payload", (await ana.PushAsync("tasks:ops", "create", new { title = new string('x', 201) })).Reason);
        Assert.Equal("not_found", (await ana.PushAsync("tasks:ops", "claim", new { id = "t-nope" })).Reason);
        Assert.Equal("unknown_event", (await ana.PushAsync("tasks:ops", "assign", new { id = a })).Reason);
        Assert.Equal("forbidden", (await ana.PushAsync("tasks:ops", "complete", new { id = a })).Reason); // open: claim it first
        Assert.True((await ana.PushAsync("tasks:ops", "list", new { })).IsOk); // and the socket carries on
    }

    [Fact]
    public async Task Guests_only_read_and_a_private_rooms_board_follows_the_room()
    {
        var mia = await ConnectAsUserAsync("mia");
        var gina = await ConnectAsUserAsync("gina", "guest");
        Assert.True((await gina.JoinAsync("tasks:hub")).IsOk);
        Assert.Equal("forbidden", (await gina.PushAsync("tasks:hub", "create", new { title = "guest task" })).Reason);

        Assert.True((await mia.JoinAsync("room:secret")).IsOk);
        var bob = await ConnectAsUserAsync("bob");
        Assert.True((await bob.JoinAsync("tasks:secret")).IsOk); // the room is public so far
        await Id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:secret", @private = true }, bearer: Id.OwnerKey, expect: HttpStatusCode.Created);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var closed = await bob.Messages.ReadAsync(timeout.Token);
        Assert.Equal(("tasks:secret", "phx_close"), (closed.Topic, closed.Event)); // removed from the board with the room
        Assert.Equal("forbidden", (await bob.JoinAsync("tasks:secret")).Reason);
        await Id.CallAsync(HttpMethod.Post, "/api/channels/room:secret/members", new { user = "bob" }, bearer: Id.OwnerKey);
        Assert.True((await bob.JoinAsync("tasks:secret")).IsOk);
    }

    [Fact]
    public async Task A_board_is_never_registered_itself_and_moves_with_its_renamed_room()
    {
        await Id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "tasks:ops", @private = false }, expect: HttpStatusCode.BadRequest);

        var mia = await ConnectAsUserAsync("mia");
        await Id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:team", @private = true }, expect: HttpStatusCode.Created);
        await Id.CallAsync(HttpMethod.Post, "/api/channels/room:team/members", new { user = "mia" });
        Assert.True((await mia.JoinAsync("tasks:team")).IsOk);
        var id = (await OkAsync(mia, "tasks:team", "create", new { title = "keep me" })).GetProperty("id").GetString();

        await Id.CallAsync(HttpMethod.Post, "/api/channels/room:team/rename", new { topic = "room:crew" });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while ((await mia.Messages.ReadAsync(timeout.Token)) is not { Topic: "tasks:team", Event: "phx_close" })
        {
        }
        var moved = await mia.JoinAsync("tasks:crew");
        Assert.True(moved.IsOk, moved.Response.ToString());
        Assert.Equal(id, Assert.Single(moved.Response.GetProperty("tasks").EnumerateArray()).GetProperty("id").GetString());

        var carol = await ConnectAsUserAsync("carol");
        Assert.Equal("forbidden", (await carol.JoinAsync("tasks:crew")).Reason); // still private: it follows room:crew now
        var old = await carol.JoinAsync("tasks:team");
        Assert.True(old.IsOk);
        Assert.Empty(old.Response.GetProperty("tasks").EnumerateArray()); // nothing left behind under the old name
    }
}
