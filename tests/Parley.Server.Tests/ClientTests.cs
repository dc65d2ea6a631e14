using System.Net;
using System.Net.Sockets;
using System.Text;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Parley.Client against real hubs (in-process and as a process) and against servers that misbehave.</summary>
public sealed class ClientTests
{
    private static ParleyClient NewClient(Uri server, string? credential = null, Action<ParleyClientOptionsBuilder>? tune = null)
    {
        var builder = new ParleyClientOptionsBuilder { Server = server, Credential = credential };
        tune?.Invoke(builder);
        return new ParleyClient(builder.Build());
    }

    /// <summary>Test knobs over the options (init-only properties).</summary>
    private sealed class ParleyClientOptionsBuilder
    {
        public required Uri Server { get; init; }
        public string? Credential { get; init; }
        public Func<CredentialRequest, CancellationToken, ValueTask<string?>>? Credentials { get; set; }
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);
        public TimeSpan ReplyTimeout { get; set; } = TimeSpan.FromSeconds(5);
        public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(30);
        public int MessageBuffer { get; set; } = 256;

        public ParleyClientOptions Build() => new()
        {
            Server = Server,
            Credentials = Credentials ?? (Credential is null ? null : (_, _) => ValueTask.FromResult<string?>(Credential)),
            ConnectTimeout = ConnectTimeout,
            ReplyTimeout = ReplyTimeout,
            HeartbeatInterval = HeartbeatInterval,
            MessageBuffer = MessageBuffer,
            Backoff = [TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(400)],
        };
    }

    private static async Task<ClientMessage> NextMessageAsync(ParleyClient client, Func<ClientMessage, bool> match)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (true)
        {
            var message = await client.Messages.ReadAsync(timeout.Token);
            if (match(message))
            {
                return message;
            }
        }
    }

    [Fact]
    public async Task Replies_are_values_and_pushes_flow_with_an_api_key()
    {
        await using var hub = await TestHub.StartAsync(configureServer: o => o.InsecureNoAuth = false);
        using var id = await IdentityClient.ForAsync(hub);
        await using var client = NewClient(hub.BaseUrl, id.OwnerKey);
        await client.StartAsync();

        var joined = await client.JoinAsync("room:client", since: 0);
        Assert.True(joined.IsOk);
        var ok = await client.PushAsync("room:client", "msg", new { body = "hello" });
        Assert.True(ok.IsOk);
        var refused = await client.PushAsync("room:client", "msg", new { nobody = 1 });
        Assert.False(refused.IsOk);
        Assert.Equal("invalid_payload", refused.Reason);

        var echoed = await NextMessageAsync(client, m => m.Event == "msg");
        Assert.Equal(1, echoed.Offset);
        Assert.Equal("hello", echoed.Payload.GetProperty("body").GetString());
    }

    [Fact]
    public async Task Every_message_arrives_exactly_once_across_two_hub_kills()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-client-" + Guid.NewGuid().ToString("N"));
        var port = HubProcess.FreePort();
        var hub = await HubProcess.StartAsync(dataDir, port);
        try
        {
            await using var reader = NewClient(hub.BaseUrl);
            await using var writer = NewClient(hub.BaseUrl);
            await reader.StartAsync();
            await writer.StartAsync();
            Assert.True((await reader.JoinAsync("room:durable", since: 0)).IsOk);
            Assert.True((await writer.JoinAsync("room:durable")).IsOk);

            var sent = 0;
            for (var round = 0; round < 3; round++)
            {
                for (var i = 0; i < 20; i++)
                {
                    var reply = await writer.PushAsync("room:durable", "msg", new { body = $"m{++sent}" });
                    Assert.True(reply.IsOk, reply.Reason);
                }
                if (round < 2)
                {
                    hub.Kill();
                    await hub.DisposeAsync();
                    hub = await HubProcess.StartAsync(dataDir, port);
                    using var ready = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    while (!(reader.IsReady && writer.IsReady))
                    {
                        await Task.Delay(50, ready.Token);
                    }
                }
            }

            var offsets = new List<long>();
            while (offsets.Count < sent)
            {
                offsets.Add((await NextMessageAsync(reader, m => m.Event == "msg")).Offset!.Value);
            }
            Assert.Equal(Enumerable.Range(1, sent).Select(i => (long)i), offsets);
            await Task.Delay(300);
            Assert.False(reader.Messages.TryPeek(out var extra) && extra.Event == "msg", "a message was delivered twice");
        }
        finally
        {
            await hub.DisposeAsync();
            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public async Task A_server_that_never_upgrades_times_out_within_the_bound()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = new List<TcpClient>();
        _ = Task.Run(async () =>
        {
            while (true)
            {
                accepted.Add(await listener.AcceptTcpClientAsync());
            }
        });
        var url = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        await using var client = NewClient(url, tune: o => { o.ConnectTimeout = TimeSpan.FromSeconds(1); o.ReplyTimeout = TimeSpan.FromSeconds(1); });

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<ParleyClientException>(() => client.StartAsync());

        Assert.Contains("not ready", error.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_server_that_upgrades_but_never_replies_fails_the_push_within_the_reply_timeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var held = new List<TcpClient>(); // keeps the accepted connection reachable: a collected TcpClient closes its socket
        _ = Task.Run(async () =>
        {
            var tcp = await listener.AcceptTcpClientAsync();
            lock (held)
            {
                held.Add(tcp);
            }
            var stream = tcp.GetStream();
            var head = new byte[4096];
            var read = await stream.ReadAsync(head);
            var request = Encoding.ASCII.GetString(head, 0, read);
            var key = request.Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase)).Split(':', 2)[1].Trim();
#pragma warning disable CA5350 // RFC 6455 mandates SHA-1 for Sec-WebSocket-Accept
            var accept = Convert.ToBase64String(System.Security.Cryptography.SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
#pragma warning restore CA5350
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: phoenix\r\n\r\n"));
            await Task.Delay(Timeout.Infinite); // never answers anything
        });
        var url = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        await using var client = NewClient(url, tune: o => o.ReplyTimeout = TimeSpan.FromSeconds(1));
        await client.StartAsync(); // no topics: the session is ready once the socket is up

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<ParleyClientException>(() => client.PushAsync("room:x", "msg", new { body = "hi" }));

        Assert.Contains("no reply", error.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"took {clock.Elapsed}");
        lock (held)
        {
            held.ForEach(static c => c.Dispose());
        }
    }

    [Fact]
    public async Task A_credential_that_fails_for_good_ends_in_auth_failed_without_a_retry_loop()
    {
        await using var hub = await TestHub.StartAsync(configureServer: o => o.InsecureNoAuth = false);
        var asked = 0;
        await using var client = NewClient(hub.BaseUrl, tune: o => o.Credentials = (_, _) =>
        {
            asked++;
            throw new CredentialUnavailableException("the refresh token was revoked");
        });

        await Assert.ThrowsAsync<ParleyClientException>(() => client.StartAsync());
        await Task.Delay(1000); // longer than the backoff: a retry loop would ask again

        Assert.Equal(1, asked);
        var events = new List<ClientEvent>();
        while (client.Events.TryRead(out var e))
        {
            events.Add(e);
        }
        Assert.Contains(events, e => e is AuthFailed);
        Assert.DoesNotContain(events, e => e is Reconnecting);
    }

    [Fact]
    public async Task A_revoked_key_stops_the_client_and_a_bad_key_never_loops()
    {
        await using var hub = await TestHub.StartAsync(configureServer: o => o.InsecureNoAuth = false);
        await using var client = NewClient(hub.BaseUrl, "prl_not-a-real-key-0000000000000000000000000");

        await Assert.ThrowsAsync<ParleyClientException>(() => client.StartAsync());
        await Task.Delay(1500);

        var events = new List<ClientEvent>();
        while (client.Events.TryRead(out var e))
        {
            events.Add(e);
        }
        Assert.True(events.Count(e => e is Reconnecting) <= 2, string.Join(", ", events));
        Assert.False(client.IsReady);
    }

    [Fact]
    public async Task A_full_buffer_drops_and_counts_while_heartbeats_keep_the_socket_alive()
    {
        // A hub process with a 4 s idle timeout: only the client's heartbeats (every second) keep the socket open.
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-client-" + Guid.NewGuid().ToString("N"));
        await using var hub = await HubProcess.StartAsync(dataDir, HubProcess.FreePort(), new Dictionary<string, string> { ["PARLEY_HUB__IDLETIMEOUT"] = "00:00:04" });
        try
        {
            await using var client = NewClient(hub.BaseUrl, tune: o => { o.MessageBuffer = 4; o.HeartbeatInterval = TimeSpan.FromSeconds(1); });
            await client.StartAsync();
            await client.JoinAsync("room:flood");

            for (var i = 0; i < 20; i++)
            {
                Assert.True((await client.PushAsync("room:flood", "msg", new { body = $"{i}" })).IsOk);
            }
            await Task.Delay(9000); // more than two idle timeouts, nothing read from Messages

            // presence_state and the socket's own presence join reach the application too: 22 events, 4 kept.
            Assert.Equal(18, client.DroppedMessages);
            var events = new List<ClientEvent>();
            while (client.Events.TryRead(out var e))
            {
                events.Add(e);
            }
            Assert.True(client.IsReady, string.Join(", ", events));
            Assert.DoesNotContain(events, e => e is Reconnecting);
            Assert.True((await client.PushAsync("room:flood", "msg", new { body = "still here" })).IsOk);
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    // The hub warns 2 s before a 4 s token expires; or it never warns and the client refreshes on its own
    // clock (a quarter of a 6 s lifetime before expiry). Either way the socket outlives its first token.
    [Theory]
    [InlineData(2, 4, 1100)] // JWT times are whole seconds: wait so the new token expires later than the old one
    [InlineData(0, 6, 0)]
    public async Task An_expiring_token_is_refreshed_in_band_without_dropping_the_socket(int warningSeconds, int lifetimeSeconds, int loginDelayMs)
    {
        await using var hub = await TestHub.StartAsync(
            configure: o => o.TokenExpiryWarning = TimeSpan.FromSeconds(warningSeconds),
            configureServer: o =>
            {
                o.InsecureNoAuth = false;
                o.Identity.AccessTokenLifetime = TimeSpan.FromSeconds(lifetimeSeconds);
            });
        using var id = await IdentityClient.ForAsync(hub);
        await id.RegisterAsync("owner1");
        var alice = await id.RegisterAsync("alice");
        var logins = 0;
        await using var client = NewClient(hub.BaseUrl, tune: o => o.Credentials = async (_, ct) =>
        {
            Interlocked.Increment(ref logins);
            await Task.Delay(loginDelayMs, ct);
            return (await id.LoginAsync(alice)).AccessToken;
        });
        await client.StartAsync();
        Assert.True((await client.JoinAsync("room:long")).IsOk);

        await Task.Delay(TimeSpan.FromSeconds(lifetimeSeconds + 3)); // past the first token's expiry

        var events = new List<ClientEvent>();
        while (client.Events.TryRead(out var e))
        {
            events.Add(e);
        }
        Assert.Contains(events, e => e is TokenRefreshing);
        Assert.DoesNotContain(events, e => e is Reconnecting);
        Assert.True(logins >= 2);
        Assert.True((await client.PushAsync("room:long", "msg", new { body = "still the same socket" })).IsOk);
    }

    [Fact]
    public async Task A_client_joined_to_twenty_topics_recovers_all_of_them_after_a_restart()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-client-" + Guid.NewGuid().ToString("N"));
        var port = HubProcess.FreePort();
        var hub = await HubProcess.StartAsync(dataDir, port);
        try
        {
            var topics = Enumerable.Range(1, 20).Select(i => $"room:many-{i}").ToList();
            await using var reader = NewClient(hub.BaseUrl);
            await using var writer = NewClient(hub.BaseUrl);
            await reader.StartAsync();
            await writer.StartAsync();
            foreach (var topic in topics)
            {
                Assert.True((await reader.JoinAsync(topic, since: 0)).IsOk);
                Assert.True((await writer.JoinAsync(topic)).IsOk);
                Assert.True((await writer.PushAsync(topic, "msg", new { body = "before" })).IsOk);
            }

            hub.Kill();
            await hub.DisposeAsync();
            hub = await HubProcess.StartAsync(dataDir, port);
            using (var ready = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                while (!(reader.IsReady && writer.IsReady))
                {
                    await Task.Delay(50, ready.Token);
                }
            }
            foreach (var topic in topics)
            {
                Assert.True((await writer.PushAsync(topic, "msg", new { body = "after" })).IsOk);
            }

            var seen = topics.ToDictionary(t => t, _ => new List<long>());
            for (var i = 0; i < 2 * topics.Count; i++)
            {
                var message = await NextMessageAsync(reader, m => m.Event == "msg");
                seen[message.Topic].Add(message.Offset!.Value);
            }
            Assert.All(topics, t => Assert.Equal([1L, 2L], seen[t]));
            var rejoined = new List<Rejoined>();
            while (reader.Events.TryRead(out var e))
            {
                if (e is Rejoined r)
                {
                    rejoined.Add(r);
                }
            }
            Assert.Equal(topics.Order(StringComparer.Ordinal), rejoined.Select(r => r.Topic).Order(StringComparer.Ordinal));
            Assert.All(rejoined, r => Assert.True(r.Recovered));
        }
        finally
        {
            await hub.DisposeAsync();
            Directory.Delete(dataDir, recursive: true);
        }
    }
}
