using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Parley.Identity.Crypto;

namespace Parley.Server.Tests.Infrastructure;

/// <summary>A user registered through the HTTP API, with the device key that logs it in.</summary>
public sealed record TestUser(string Name, byte[] PrivateKey);

/// <summary>The identity HTTP API as tests use it: the owner key, invites, register, login, calls.</summary>
public sealed class IdentityClient : IDisposable
{
    private readonly HttpClient _http;

    private IdentityClient(TestHub hub, string ownerKey)
    {
        Hub = hub;
        OwnerKey = ownerKey;
        _http = new HttpClient { BaseAddress = hub.BaseUrl };
    }

    public TestHub Hub { get; }

    /// <summary>The hub's initial owner API key.</summary>
    public string OwnerKey { get; }

    public static async Task<IdentityClient> ForAsync(TestHub hub) =>
        new(hub, (await File.ReadAllTextAsync(hub.Host.InitialOwnerKeyFile!)).Trim());

    /// <summary>Calls the API as <paramref name="bearer"/> (default: the owner key) and checks the status.</summary>
    public async Task<JsonNode> CallAsync(HttpMethod method, string path, object? body = null, string? bearer = null, HttpStatusCode expect = HttpStatusCode.OK)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer ?? OwnerKey);
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expect, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>Registers a user with an invite of <paramref name="role"/> (the hub's first user becomes owner regardless).</summary>
    public async Task<TestUser> RegisterAsync(string name, string role = "member")
    {
        var invite = (await CallAsync(HttpMethod.Post, "/api/invites", new { role }, expect: HttpStatusCode.Created))["code"]!.GetValue<string>();
        var (privateKey, publicKey) = DeviceKeys.Generate();
        using var response = await _http.PostAsJsonAsync("/api/register", new { name, public_key = Base64Url.EncodeToString(publicKey), invite });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return new TestUser(name, privateKey);
    }

    /// <summary>Challenge, sign, login: the access token and its expiry.</summary>
    public async Task<(string AccessToken, long ExpiresAt)> LoginAsync(TestUser user)
    {
        using var challengeResponse = await _http.PostAsJsonAsync("/api/auth/challenge", new { name = user.Name });
        var challenge = JsonNode.Parse(await challengeResponse.Content.ReadAsStringAsync())!;
        var nonce = challenge["nonce"]!.GetValue<string>();
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var signature = DeviceKeys.Sign(user.PrivateKey, DeviceKeys.LoginMessage(challenge["hub_id"]!.GetValue<string>(), user.Name, nonce, timestamp));
        using var loginResponse = await _http.PostAsJsonAsync("/api/auth/login", new { name = user.Name, nonce, timestamp, signature = Base64Url.EncodeToString(signature) });
        Assert.Equal(HttpStatusCode.OK, loginResponse.StatusCode);
        var tokens = JsonNode.Parse(await loginResponse.Content.ReadAsStringAsync())!;
        return (tokens["access_token"]!.GetValue<string>(), tokens["expires_at"]!.GetValue<long>());
    }

    /// <summary>Opens a socket with a credential in the query.</summary>
    public Task<RawWebSocket> ConnectAsync(string credential) =>
        RawWebSocket.ConnectAsync(Hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=" + Uri.EscapeDataString(credential));

    public void Dispose() => _http.Dispose();
}
