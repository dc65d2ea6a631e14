using System.Net;
using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Groups over the HTTP API and <c>hub:lobby</c> through real Kestrel, nested names travelling as %2F.</summary>
public sealed class GroupTests : IAsyncLifetime
{
    private TestHub _hub = null!;
    private IdentityClient _id = null!;
    private string _lena = null!;
    private string _mia = null!;
    private string _gina = null!;

    public async Task InitializeAsync()
    {
        _hub = await TestHub.StartAsync(configureServer: o => o.InsecureNoAuth = false);
        _id = await IdentityClient.ForAsync(_hub);
        await _id.RegisterAsync("owner1");
        _lena = (await _id.LoginAsync(await _id.RegisterAsync("lena"))).AccessToken;
        _mia = (await _id.LoginAsync(await _id.RegisterAsync("mia"))).AccessToken;
        _gina = (await _id.LoginAsync(await _id.RegisterAsync("gina", "guest"))).AccessToken;
    }

    public async Task DisposeAsync()
    {
        _id.Dispose();
        await _hub.DisposeAsync();
    }

    private static string[] Strings(JsonNode node) => [.. node.AsArray().Select(n => n!.GetValue<string>())];

    private async Task RefusedAsync(HttpMethod method, string path, object? body, string? bearer, HttpStatusCode status, string error)
    {
        var reply = await _id.CallAsync(method, path, body, bearer, expect: status);
        Assert.Equal(error, reply["error"]!.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(reply["message"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Nested_groups_round_trip_over_http_with_encoded_slashes()
    {
        var team = await _id.CallAsync(HttpMethod.Post, "/api/groups", new { name = "@team" }, expect: HttpStatusCode.Created);
        Assert.Equal("team", team["name"]!.GetValue<string>());
        await _id.CallAsync(HttpMethod.Post, "/api/groups", new { name = "team/backend" }, expect: HttpStatusCode.Created);
        await _id.CallAsync(HttpMethod.Post, "/api/groups/%40team/members", new { user = "lena", lead = true });
        await _id.CallAsync(HttpMethod.Post, "/api/groups/team/members", new { user = "mia" });
        await _id.CallAsync(HttpMethod.Post, "/api/groups/team%2Fbackend/members", new { user = "mia" });

        // lena leads @team: she creates a group two levels down and fills it.
        var db = await _id.CallAsync(HttpMethod.Post, "/api/groups", new { name = "team/backend/db" }, bearer: _lena, expect: HttpStatusCode.Created);
        Assert.Equal("team/backend/db", db["name"]!.GetValue<string>());
        var added = await _id.CallAsync(HttpMethod.Post, "/api/groups/%40team%2Fbackend%2Fdb/members", new { user = "gina" }, bearer: _lena);
        Assert.False(added["lead"]!.GetValue<bool>());

        // A guest sees it all.
        var backend = await _id.CallAsync(HttpMethod.Get, "/api/groups/team%2Fbackend", bearer: _gina);
        Assert.Equal("team/backend", backend["name"]!.GetValue<string>());
        Assert.Equal("mia", Assert.Single(backend["members"]!.AsArray())!["name"]!.GetValue<string>());
        Assert.Equal(["team/backend/db"], Strings(backend["subgroups"]!));
        Assert.Equal(["gina", "mia"], Strings(backend["expanded"]!));
        var top = await _id.CallAsync(HttpMethod.Get, "/api/groups/team", bearer: _gina);
        Assert.Equal(["gina", "lena", "mia"], Strings(top["expanded"]!));
        Assert.True(top["members"]!.AsArray().Single(m => m!["name"]!.GetValue<string>() == "lena")!["lead"]!.GetValue<bool>());
        var list = await _id.CallAsync(HttpMethod.Get, "/api/groups", bearer: _gina);
        Assert.Equal(
            [("team", 2), ("team/backend", 1), ("team/backend/db", 1)],
            list["groups"]!.AsArray().Select(g => (g!["name"]!.GetValue<string>(), g["member_count"]!.GetValue<int>())));

        // Refusals, each with its status and code.
        await RefusedAsync(HttpMethod.Post, "/api/groups/team%2Fbackend/members", new { user = "gina" }, _mia, HttpStatusCode.Forbidden, "forbidden");
        await RefusedAsync(HttpMethod.Post, "/api/groups", new { name = "mine" }, _lena, HttpStatusCode.Forbidden, "forbidden");
        await RefusedAsync(HttpMethod.Post, "/api/groups", new { name = "Team" }, null, HttpStatusCode.BadRequest, "invalid_group");
        await RefusedAsync(HttpMethod.Post, "/api/groups", new { name = "nope/sub" }, null, HttpStatusCode.NotFound, "group_not_found");
        await RefusedAsync(HttpMethod.Get, "/api/groups/nope", null, _gina, HttpStatusCode.NotFound, "group_not_found");
        await RefusedAsync(HttpMethod.Post, "/api/groups", new { name = "team" }, null, HttpStatusCode.Conflict, "group_exists");
        await RefusedAsync(HttpMethod.Delete, "/api/groups/team%2Fbackend", null, null, HttpStatusCode.Conflict, "group_has_subgroups");
        await RefusedAsync(HttpMethod.Post, "/api/groups/team/members", new { user = "ghost" }, null, HttpStatusCode.NotFound, "user_not_found");
        await RefusedAsync(HttpMethod.Delete, "/api/groups/team/members/gina", null, null, HttpStatusCode.NotFound, "member_not_found");

        await _id.CallAsync(HttpMethod.Delete, "/api/groups/team%2Fbackend%2Fdb/members/gina", bearer: _lena);
        Assert.Equal(["lena", "mia"], Strings((await _id.CallAsync(HttpMethod.Get, "/api/groups/team"))["expanded"]!));
        await _id.CallAsync(HttpMethod.Delete, "/api/groups/team%2Fbackend%2Fdb");
        await RefusedAsync(HttpMethod.Get, "/api/groups/team%2Fbackend%2Fdb", null, null, HttpStatusCode.NotFound, "group_not_found");

        var audit = await _id.CallAsync(HttpMethod.Get, "/api/audit?limit=1000");
        var events = audit["entries"]!.AsArray().Select(e => e!["event"]!.GetValue<string>()).Where(e => e.StartsWith("group.", StringComparison.Ordinal)).ToList();
        Assert.Equal(["group.created", "group.created", "group.member_added", "group.member_added", "group.member_added", "group.created", "group.member_added", "group.member_removed", "group.deleted"], events);
    }

    [Fact]
    public async Task Group_operations_work_as_hub_lobby_pushes()
    {
        await using var owner = await _id.ConnectAsync(_id.OwnerKey);
        await owner.JoinAsync("hub:lobby");
        await using var mia = await _id.ConnectAsync(_mia);
        await mia.JoinAsync("hub:lobby");

        var created = await owner.ReadReplyAsync(await owner.PushAsync(null, "hub:lobby", "group.create", new { group = "@reviewers" }));
        Assert.Equal("ok", created.Status());
        Assert.Equal("reviewers", created.Response()["name"]!.GetValue<string>());
        Assert.Equal("ok", (await owner.ReadReplyAsync(await owner.PushAsync(null, "hub:lobby", "group.add_member", new { group = "reviewers", user = "mia", lead = true }))).Status());

        var shown = await mia.ReadReplyAsync(await mia.PushAsync(null, "hub:lobby", "group.show", new { group = "@reviewers" }));
        Assert.Equal(["mia"], Strings(shown.Response()["expanded"]!));
        var denied = await mia.ReadReplyAsync(await mia.PushAsync(null, "hub:lobby", "group.delete", new { group = "reviewers" }));
        Assert.Equal("forbidden", denied.Reason());
        var missing = await mia.ReadReplyAsync(await mia.PushAsync(null, "hub:lobby", "group.show", new { group = "nobody" }));
        Assert.Equal("group_not_found", missing.Reason());
    }
}
