using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Parley.Identity.Crypto;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Identity over real Kestrel: the HTTP API and credentials on live socket upgrades.</summary>
public sealed class IdentityTests : IAsyncLifetime
{
    private TestHub _hub = null!;
    private HttpClient _http = null!;
    private string _ownerKey = null!;

    public async Task InitializeAsync()
    {
        _hub = await TestHub.StartAsync(configureServer: o => o.InsecureNoAuth = false);
        _http = new HttpClient { BaseAddress = _hub.BaseUrl };
        _ownerKey = (await File.ReadAllTextAsync(_hub.Host.InitialOwnerKeyFile!)).Trim();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _hub.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, JsonNode Body, HttpResponseMessage Response)> CallAsync(HttpMethod method, string path, object? body = null, string? bearer = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }
        if (bearer is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        }
        var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonNode.Parse(text)!, response);
    }

    private async Task<string> InviteAsync(string role)
    {
        var (status, body, _) = await CallAsync(HttpMethod.Post, "/api/invites", new { role, max_uses = 1 }, _ownerKey);
        Assert.Equal(HttpStatusCode.Created, status);
        return body["code"]!.GetValue<string>();
    }

    /// <summary>Registers over HTTP with a fresh device key and logs in; returns the access token.</summary>
    private async Task<(string AccessToken, byte[] PrivateKey)> RegisterAndLoginAsync(string name, string? invite)
    {
        var (privateKey, publicKey) = DeviceKeys.Generate();
        var (status, body, _) = await CallAsync(HttpMethod.Post, "/api/register", new { name, public_key = Base64Url.EncodeToString(publicKey), invite });
        Assert.True(status == HttpStatusCode.Created, body.ToJsonString());
        var (_, challenge, _) = await CallAsync(HttpMethod.Post, "/api/auth/challenge", new { name });
        var nonce = challenge["nonce"]!.GetValue<string>();
        var hubId = challenge["hub_id"]!.GetValue<string>();
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var signature = DeviceKeys.Sign(privateKey, DeviceKeys.LoginMessage(hubId, name, nonce, timestamp));
        var (loginStatus, tokens, _) = await CallAsync(HttpMethod.Post, "/api/auth/login", new { name, nonce, timestamp, signature = Base64Url.EncodeToString(signature) });
        Assert.True(loginStatus == HttpStatusCode.OK, tokens.ToJsonString());
        return (tokens["access_token"]!.GetValue<string>(), privateKey);
    }

    private async Task<(string Response, RawWebSocket Socket)> UpgradeAsync(string? token, bool viaSubprotocol = false)
    {
        var path = "/socket/websocket?vsn=2.0.0" + (token is not null && !viaSubprotocol ? "&token=" + Uri.EscapeDataString(token) : "");
        var subprotocols = viaSubprotocol && token is not null
            ? "phoenix, base64url.bearer.phx." + Base64Url.EncodeToString(System.Text.Encoding.ASCII.GetBytes(token))
            : "phoenix";
        var (socket, response) = await RawWebSocket.TryConnectAsync(_hub.BaseUrl, path, subprotocols);
        return (response, socket);
    }

    [Fact]
    public async Task A_socket_without_a_valid_credential_is_refused_with_401_before_the_upgrade()
    {
        foreach (var token in new string?[] { null, "", "garbage", "prl_" + new string('x', 43), "a.b.c" })
        {
            var (response, socket) = await UpgradeAsync(token);
            await socket.DisposeAsync();
            Assert.StartsWith("HTTP/1.1 401", response, StringComparison.Ordinal);
            if (!string.IsNullOrEmpty(token))
            {
                Assert.DoesNotContain(token, response, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task The_initial_owner_key_is_private_and_administers_the_hub()
    {
        var path = _hub.Host.InitialOwnerKeyFile!;
        Assert.Equal(Path.Combine(_hub.DataDir, "initial-owner-key"), path);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        Assert.StartsWith("prl_", _ownerKey, StringComparison.Ordinal);

        var (status, whoami, _) = await CallAsync(HttpMethod.Get, "/api/whoami", bearer: _ownerKey);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("owner", whoami["role"]!.GetValue<string>());

        var (response, socket) = await UpgradeAsync(_ownerKey);
        await using (socket)
        {
            Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
            await socket.JoinAsync("room:ops");
        }
    }

    [Fact]
    public async Task Register_login_and_connect_with_the_access_token_in_the_query_or_the_bearer_subprotocol()
    {
        var (access, _) = await RegisterAndLoginAsync("alice", null); // first user: owner, no invite needed

        foreach (var viaSubprotocol in new[] { false, true })
        {
            var (response, socket) = await UpgradeAsync(access, viaSubprotocol);
            await using (socket)
            {
                Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
                await socket.JoinAsync("room:general");
                var pushRef = await socket.PushAsync("1", "room:general", "msg", new { body = "hi" });
                var others = new List<ServerFrame>();
                var reply = await socket.ReadReplyAsync(pushRef, others);
                Assert.Equal("ok", reply.Status());
                var msg = others.Find(f => f.Event == "msg") ?? await socket.ReadUntilAsync(f => f.Event == "msg");
                Assert.Equal("alice", msg.Payload_!["from"]!.GetValue<string>());
            }
        }
    }

    [Fact]
    public async Task A_guest_may_join_and_read_but_a_push_is_forbidden()
    {
        await RegisterAndLoginAsync("alice", null);
        var (guest, _) = await RegisterAndLoginAsync("gina", await InviteAsync("guest"));

        var (response, socket) = await UpgradeAsync(guest);
        await using (socket)
        {
            Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
            await socket.JoinAsync("room:general");
            var pushRef = await socket.PushAsync("1", "room:general", "msg", new { body = "may I?" });
            var reply = await socket.ReadReplyAsync(pushRef);
            Assert.Equal("error", reply.Status());
            Assert.Equal("forbidden", reply.Reason());
        }
        Assert.Equal(0, (await _hub.Host.Hub.History.GetPositionAsync("room:general")).Head);
    }

    [Fact]
    public async Task A_key_restricted_to_topics_cannot_join_others_and_a_revoked_key_gets_403()
    {
        var (status, created, _) = await CallAsync(HttpMethod.Post, "/api/keys", new { name = "ci-bot", scope = "write", topics = "room:ci-*" }, _ownerKey);
        Assert.Equal(HttpStatusCode.Created, status);
        var key = created["key"]!.GetValue<string>();
        var id = created["id"]!.GetValue<string>();

        var (response, socket) = await UpgradeAsync(key);
        await using (socket)
        {
            Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
            await socket.JoinAsync("room:ci-builds");
            var joinRef = await socket.PushAsync("9", "room:general", "phx_join", new { });
            var denied = await socket.ReadReplyAsync(joinRef);
            Assert.Equal("error", denied.Status());
            Assert.Equal("forbidden", denied.Reason());
        }

        var (listStatus, list, _) = await CallAsync(HttpMethod.Get, "/api/keys", bearer: _ownerKey);
        Assert.Equal(HttpStatusCode.OK, listStatus);
        Assert.DoesNotContain(key, list.ToJsonString(), StringComparison.Ordinal); // shown once, never listed

        Assert.Equal(HttpStatusCode.OK, (await CallAsync(HttpMethod.Delete, "/api/keys/" + id, bearer: _ownerKey)).Status);
        var (revokedResponse, revokedSocket) = await UpgradeAsync(key);
        await revokedSocket.DisposeAsync();
        Assert.StartsWith("HTTP/1.1 403", revokedResponse, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Api_errors_are_json_with_a_code_and_the_right_status()
    {
        var (status, body, response) = await CallAsync(HttpMethod.Get, "/api/keys");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("unauthenticated", body["error"]!.GetValue<string>());
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());

        using var bad = new HttpRequestMessage(HttpMethod.Post, "/api/auth/challenge") { Content = new StringContent("{not json", System.Text.Encoding.UTF8, "application/json") };
        var badResponse = await _http.SendAsync(bad);
        Assert.Equal(HttpStatusCode.BadRequest, badResponse.StatusCode);
        Assert.Equal("invalid_json", JsonNode.Parse(await badResponse.Content.ReadAsStringAsync())!["error"]!.GetValue<string>());

        var (registerStatus, registerBody, _) = await CallAsync(HttpMethod.Post, "/api/register", new { name = "x!", public_key = "AAAA" });
        Assert.Equal(HttpStatusCode.BadRequest, registerStatus);
        Assert.Equal("invalid_name", registerBody["error"]!.GetValue<string>());

        await RegisterAndLoginAsync("alice", null);
        var (_, publicKey) = DeviceKeys.Generate();
        var (inviteStatus, inviteBody, _) = await CallAsync(HttpMethod.Post, "/api/register", new { name = "bob", public_key = Base64Url.EncodeToString(publicKey) });
        Assert.Equal(HttpStatusCode.Forbidden, inviteStatus);
        Assert.Equal("invite_required", inviteBody["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Login_brute_force_is_throttled_with_429_and_retry_after()
    {
        HttpStatusCode last = HttpStatusCode.OK;
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 40 && last != HttpStatusCode.TooManyRequests; i++)
        {
            (last, _, limited) = await CallAsync(HttpMethod.Post, "/api/auth/challenge", new { name = "alice" });
        }
        Assert.Equal(HttpStatusCode.TooManyRequests, last);
        Assert.True(limited!.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
    }
}
