using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Parley.Identity.Crypto;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Secrets fed through every failing path never reach the log file, replies or metrics.</summary>
public sealed class RedactionTests
{
    [Fact]
    public async Task Tokens_and_keys_on_failing_paths_are_scrubbed_from_logs_replies_and_metrics()
    {
        var logDir = Path.Combine(Path.GetTempPath(), "parley-redaction-" + Guid.NewGuid().ToString("N"));
        var logFile = Path.Combine(logDir, "parley.log");
        var secrets = new List<string>();
        var replies = new List<string>();
        string metrics;
        await using (var hub = await TestHub.StartAsync(fileLogging: true, configureServer: o =>
        {
            o.InsecureNoAuth = false;
            o.Log.MinimumLevel = LogLevel.Trace;
            o.Log.FilePath = logFile;
        }))
        {
            using var http = new HttpClient { BaseAddress = hub.BaseUrl };
            var ownerKey = (await File.ReadAllTextAsync(hub.Host.InitialOwnerKeyFile!)).Trim();
            const string fakeJwt = "eyJhbGciOiJIUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJhbGljZSJ9.c2VjcmV0LXNpZ25hdHVyZQ";
            secrets.Add(ownerKey);
            secrets.Add(fakeJwt);

            // Socket upgrades that fail: a bad vsn with a valid key, a forged JWT, a bearer subprotocol.
            foreach (var path in new[]
            {
                "/socket/websocket?vsn=1.0.0&token=" + ownerKey,
                "/socket/websocket?vsn=2.0.0&token=" + fakeJwt,
            })
            {
                var (socket, response) = await RawWebSocket.TryConnectAsync(hub.BaseUrl, path);
                await socket.DisposeAsync();
                replies.Add(response);
            }
            var (bearerSocket, bearerResponse) = await RawWebSocket.TryConnectAsync(hub.BaseUrl, "/socket/websocket?vsn=2.0.0",
                "phoenix, base64url.bearer.phx." + Base64Url.EncodeToString(System.Text.Encoding.ASCII.GetBytes(fakeJwt)));
            await bearerSocket.DisposeAsync();
            replies.Add(bearerResponse);

            // The same over plain HTTP (the keep-alive path through the HTTP pipeline): 426.
            replies.Add(await (await http.GetAsync("/socket/websocket?vsn=2.0.0&token=" + ownerKey)).Content.ReadAsStringAsync());

            // Login, then a reused refresh token (logged as a warning), and a bearer that is not valid.
            var (privateKey, publicKey) = DeviceKeys.Generate();
            (await http.PostAsJsonAsync("/api/register", new { name = "alice", public_key = Base64Url.EncodeToString(publicKey) })).EnsureSuccessStatusCode();
            var challenge = JsonNode.Parse(await (await http.PostAsJsonAsync("/api/auth/challenge", new { name = "alice" })).Content.ReadAsStringAsync())!;
            var nonce = challenge["nonce"]!.GetValue<string>();
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var signature = DeviceKeys.Sign(privateKey, DeviceKeys.LoginMessage(challenge["hub_id"]!.GetValue<string>(), "alice", nonce, now));
            var tokens = JsonNode.Parse(await (await http.PostAsJsonAsync("/api/auth/login", new { name = "alice", nonce, timestamp = now, signature = Base64Url.EncodeToString(signature) })).Content.ReadAsStringAsync())!;
            var refresh = tokens["refresh_token"]!.GetValue<string>();
            var access = tokens["access_token"]!.GetValue<string>();
            secrets.Add(refresh);
            secrets.Add(access);
            replies.Add(await (await http.PostAsJsonAsync("/api/auth/refresh", new { refresh_token = refresh })).Content.ReadAsStringAsync());
            var reuse = await http.PostAsJsonAsync("/api/auth/refresh", new { refresh_token = refresh });
            Assert.Equal(HttpStatusCode.Unauthorized, reuse.StatusCode);
            replies.Add(await reuse.Content.ReadAsStringAsync());
            using (var request = new HttpRequestMessage(HttpMethod.Get, "/api/keys"))
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", fakeJwt);
                replies.Add(await (await http.SendAsync(request)).Content.ReadAsStringAsync());
            }

            // In-band refresh with a bad token on a live socket.
            await using (var socket = await RawWebSocket.ConnectAsync(hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=" + Uri.EscapeDataString(access)))
            {
                await socket.JoinAsync("hub:lobby");
                var reply = await socket.ReadReplyAsync(await socket.PushAsync("1", "hub:lobby", "token.refresh", new { access_token = fakeJwt }));
                replies.Add(reply.Text);
            }
            metrics = await http.GetStringAsync("/metrics");
        }

        var log = string.Join("\n", Directory.GetFiles(logDir).Select(File.ReadAllText));
        Directory.Delete(logDir, recursive: true);
        Assert.Contains("Connection", log, StringComparison.Ordinal); // the hub did log these events
        Assert.Contains("refresh token", log, StringComparison.Ordinal);
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, log, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, metrics, StringComparison.Ordinal);
            foreach (var reply in replies)
            {
                Assert.DoesNotContain(secret, reply, StringComparison.Ordinal);
            }
        }
    }
}
