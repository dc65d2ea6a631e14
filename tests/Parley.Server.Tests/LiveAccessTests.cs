using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Access changes reach live sockets: expiry with and without in-band refresh, revocation, bans, kicks, role changes.</summary>
public sealed class LiveAccessTests : IAsyncLifetime
{
    private TestHub _hub = null!;
    private IdentityClient _id = null!;

    public async Task InitializeAsync()
    {
        _hub = await TestHub.StartAsync(
            configure: hub => hub.TokenExpiryWarning = TimeSpan.FromSeconds(2),
            configureServer: o =>
            {
                o.InsecureNoAuth = false;
                o.Identity.AccessTokenLifetime = TimeSpan.FromSeconds(4);
            });
        _id = await IdentityClient.ForAsync(_hub);
    }

    public async Task DisposeAsync()
    {
        _id.Dispose();
        await _hub.DisposeAsync();
    }

    private Task<JsonNode> CallAsync(HttpMethod method, string path, object? body = null, string? bearer = null, HttpStatusCode expect = HttpStatusCode.OK) =>
        _id.CallAsync(method, path, body, bearer, expect);

    private Task<TestUser> RegisterAsync(string name, string role = "member") => _id.RegisterAsync(name, role);

    private Task<(string AccessToken, long ExpiresAt)> LoginAsync(TestUser user) => _id.LoginAsync(user);

    private Task<RawWebSocket> ConnectAsync(string credential) => _id.ConnectAsync(credential);

    [Fact]
    public async Task An_expiring_token_is_warned_on_the_lobby_then_the_socket_is_closed_with_4401()
    {
        await RegisterAsync("owner1");
        var alice = await RegisterAsync("alice");
        var (token, expiresAt) = await LoginAsync(alice);
        await using var socket = await ConnectAsync(token);
        var lobby = await socket.JoinAsync("hub:lobby");
        Assert.Equal("alice", lobby["name"]!.GetValue<string>());
        Assert.Equal(expiresAt, lobby["expires_at"]!.GetValue<long>());

        var warning = await socket.ReadUntilAsync(f => f.Event == "token_expired", timeout: TimeSpan.FromSeconds(10));
        Assert.Equal("hub:lobby", warning.Topic);
        Assert.Equal(expiresAt, warning.Payload_!["expires_at"]!.GetValue<long>());

        var close = await socket.ReadCloseAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(4401, close.CloseCode);
        Assert.True(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() >= expiresAt, "closed before the token expired");
    }

    [Fact]
    public async Task An_in_band_refresh_keeps_the_socket_open_past_the_old_expiry()
    {
        await RegisterAsync("owner1");
        var alice = await RegisterAsync("alice");
        var (token, expiresAt) = await LoginAsync(alice);
        await using var socket = await ConnectAsync(token);
        await socket.JoinAsync("hub:lobby");
        await socket.JoinAsync("room:work");

        await socket.ReadUntilAsync(f => f.Event == "token_expired", timeout: TimeSpan.FromSeconds(10));
        await Task.Delay(1100); // a new token gets a later expiry (JWT times are whole seconds)
        var (fresh, freshExpiry) = await LoginAsync(alice);
        var refreshRef = await socket.PushAsync("1", "hub:lobby", "token.refresh", new { access_token = fresh });
        var reply = await socket.ReadReplyAsync(refreshRef);
        Assert.Equal("ok", reply.Status());
        Assert.Equal(freshExpiry, reply.Response()["expires_at"]!.GetValue<long>());
        Assert.True(freshExpiry > expiresAt);

        // Past the old expiry the socket still works.
        var wait = expiresAt - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 1200;
        if (wait > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(wait));
        }
        var pushRef = await socket.PushAsync("2", "room:work", "msg", new { body = "still here" });
        var pushed = await socket.ReadReplyAsync(pushRef, timeout: TimeSpan.FromSeconds(5));
        Assert.Equal("ok", pushed.Status());
    }

    [Fact]
    public async Task A_refresh_with_someone_elses_or_a_bad_token_is_refused_and_changes_nothing()
    {
        await RegisterAsync("owner1");
        var alice = await RegisterAsync("alice");
        var bob = await RegisterAsync("bob");
        var (aliceToken, _) = await LoginAsync(alice);
        var (bobToken, _) = await LoginAsync(bob);
        await using var socket = await ConnectAsync(aliceToken);
        await socket.JoinAsync("hub:lobby");

        var asBob = await socket.ReadReplyAsync(await socket.PushAsync("1", "hub:lobby", "token.refresh", new { access_token = bobToken }));
        var garbage = await socket.ReadReplyAsync(await socket.PushAsync("1", "hub:lobby", "token.refresh", new { access_token = "nope" }));
        var missing = await socket.ReadReplyAsync(await socket.PushAsync("1", "hub:lobby", "token.refresh", new { }));

        Assert.Equal("invalid_token", asBob.Reason());
        Assert.Equal("invalid_token", garbage.Reason());
        Assert.Equal("invalid_payload", missing.Reason());
        Assert.DoesNotContain(bobToken, asBob.Text, StringComparison.Ordinal);
        var sessions = await CallAsync(HttpMethod.Get, "/api/sessions");
        Assert.Equal("alice", sessions["sessions"]!.AsArray().Single()!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Revoking_a_key_closes_its_live_socket_within_a_second_with_4403()
    {
        var created = await CallAsync(HttpMethod.Post, "/api/keys", new { name = "bot", scope = "write" }, expect: HttpStatusCode.Created);
        await using var socket = await ConnectAsync(created["key"]!.GetValue<string>());
        await socket.JoinAsync("room:ops");

        var clock = Stopwatch.StartNew();
        await CallAsync(HttpMethod.Delete, "/api/keys/" + created["id"]!.GetValue<string>());
        var close = await socket.ReadCloseAsync(TimeSpan.FromSeconds(1));

        Assert.Equal(4403, close.CloseCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task A_ban_closes_every_socket_of_the_user_and_refuses_new_ones_and_a_kick_lets_them_back()
    {
        await RegisterAsync("owner1");
        var alice = await RegisterAsync("alice");
        var (token, _) = await LoginAsync(alice);
        var key = (await CallAsync(HttpMethod.Post, "/api/keys", new { name = "alice-bot", scope = "write", user = "alice" }, expect: HttpStatusCode.Created))["key"]!.GetValue<string>();

        await using (var kicked = await ConnectAsync(token))
        {
            await kicked.JoinAsync("room:a");
            await CallAsync(HttpMethod.Post, "/api/users/alice/kick");
            Assert.Equal(4409, (await kicked.ReadCloseAsync(TimeSpan.FromSeconds(1))).CloseCode);
        }

        await using var viaToken = await ConnectAsync(token); // a kick revokes nothing
        await using var viaKey = await ConnectAsync(key);
        await viaToken.JoinAsync("room:a");
        await viaKey.JoinAsync("room:a");

        await CallAsync(HttpMethod.Post, "/api/users/alice/ban");

        Assert.Equal(4403, (await viaToken.ReadCloseAsync(TimeSpan.FromSeconds(1))).CloseCode);
        Assert.Equal(4403, (await viaKey.ReadCloseAsync(TimeSpan.FromSeconds(1))).CloseCode);
        var (refused, response) = await RawWebSocket.TryConnectAsync(_hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=" + Uri.EscapeDataString(token));
        await refused.DisposeAsync();
        Assert.StartsWith("HTTP/1.1 403", response, StringComparison.Ordinal);

        await CallAsync(HttpMethod.Delete, "/api/users/alice/ban");
        var (again, _) = await LoginAsync(alice);
        await using var back = await ConnectAsync(again);
        await back.JoinAsync("room:a");
    }

    [Fact]
    public async Task A_demotion_to_guest_applies_to_the_live_socket_at_once()
    {
        await RegisterAsync("owner1");
        var mia = await RegisterAsync("mia");
        var (token, _) = await LoginAsync(mia);
        await using var socket = await ConnectAsync(token);
        await socket.JoinAsync("room:team");
        Assert.Equal("ok", (await socket.ReadReplyAsync(await socket.PushAsync("1", "room:team", "msg", new { body = "one" }))).Status());

        await CallAsync(HttpMethod.Post, "/api/users/mia/role", new { role = "guest" });

        var refused = await socket.ReadReplyAsync(await socket.PushAsync("1", "room:team", "msg", new { body = "two" }));
        Assert.Equal("forbidden", refused.Reason());
        var users = await CallAsync(HttpMethod.Get, "/api/users");
        Assert.Equal("guest", users["users"]!.AsArray().Single(u => u!["name"]!.GetValue<string>() == "mia")!["role"]!.GetValue<string>());
    }

    [Fact]
    public async Task Only_admins_manage_users_and_sessions()
    {
        await RegisterAsync("owner1"); // the first user is the owner
        var mia = await RegisterAsync("mia");
        var bob = await RegisterAsync("bob");
        var (token, _) = await LoginAsync(mia);

        await CallAsync(HttpMethod.Post, "/api/users/bob/ban", bearer: token, expect: HttpStatusCode.Forbidden);
        await CallAsync(HttpMethod.Get, "/api/sessions", bearer: token, expect: HttpStatusCode.Forbidden);
        await CallAsync(HttpMethod.Get, "/api/users", bearer: token, expect: HttpStatusCode.Forbidden);
        await CallAsync(HttpMethod.Post, "/api/users/nobody/kick", expect: HttpStatusCode.NotFound);
        Assert.NotNull(bob);
    }
}
