using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

public sealed class OperationsTests
{
    [Fact]
    public async Task Health_reports_status_version_uptime_and_connections()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        using var http = new HttpClient();
        // The 101 reaches the client just before the hub attaches the socket: give the count a moment.
        var health = JsonNode.Parse(await http.GetStringAsync(new Uri(hub.BaseUrl, "/health")))!;
        for (var tries = 0; health["connections"]!.GetValue<int>() == 0 && tries < 250; tries++)
        {
            await Task.Delay(20);
            health = JsonNode.Parse(await http.GetStringAsync(new Uri(hub.BaseUrl, "/health")))!;
        }
        Assert.Equal("ok", health["status"]!.GetValue<string>());
        Assert.Equal(ParleyServerHost.Version, health["version"]!.GetValue<string>());
        Assert.True(health["uptime_s"]!.GetValue<double>() >= 0);
        Assert.Equal(1, health["connections"]!.GetValue<int>());
    }

    [Fact]
    public async Task Metrics_expose_the_hub_counters_in_prometheus_text()
    {
        await using var hub = await TestHub.StartAsync();
        await using var client = await hub.ConnectAsync();
        await client.JoinAsync("room:m");
        await client.ReadReplyAsync(await client.PushAsync("1", "room:m", "msg", new { body = "count me" }));
        await client.ReadUntilAsync(f => f.Event == "msg");

        using var http = new HttpClient();
        var response = await http.GetAsync(new Uri(hub.BaseUrl, "/metrics"));
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType, StringComparison.Ordinal);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("parley_connections 1", text, StringComparison.Ordinal);
        Assert.Contains("parley_joins_total 1", text, StringComparison.Ordinal);
        Assert.Contains("parley_messages_stored_total 1", text, StringComparison.Ordinal);
        Assert.Contains("parley_messages_delivered_total 1", text, StringComparison.Ordinal);
        Assert.Contains("parley_store_commit_seconds_count 1", text, StringComparison.Ordinal);
        foreach (var name in new[] { "parley_pushes_total", "parley_bytes_received_total", "parley_bytes_sent_total", "parley_slow_consumer_disconnects_total", "parley_rate_limited_pushes_total", "process_resident_memory_bytes" })
        {
            Assert.Contains(name + " ", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Graceful_stop_acks_queued_pushes_then_closes_every_socket_with_1001()
    {
        var hub = await TestHub.StartAsync();
        try
        {
            await using var a = await hub.ConnectAsync();
            await using var b = await hub.ConnectAsync();
            await a.JoinAsync("room:bye");
            await b.JoinAsync("room:bye");
            var refs = new List<string>();
            for (var i = 0; i < 50; i++)
            {
                refs.Add(await a.PushAsync("1", "room:bye", "msg", new { body = $"m{i}" }));
            }
            // Wait until the hub has read them all (they are queued or committed), then stop.
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (hub.Hub.Metrics.Pushes < 52 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5);
            }
            var stop = hub.Host.StopAsync();

            var acked = new HashSet<string>();
            ServerFrame close;
            while (true)
            {
                var frame = await a.ReadFrameAsync();
                if (frame.IsClose)
                {
                    close = frame;
                    break;
                }
                if (frame.Event == "phx_reply" && frame.Status() == "ok")
                {
                    acked.Add(frame.Ref!);
                }
            }
            Assert.Equal(refs.ToHashSet(), acked);
            Assert.Equal(1001, close.CloseCode);
            Assert.Equal("server shutting down", close.CloseReason);
            Assert.Equal(1001, (await b.ReadCloseAsync()).CloseCode);
            await stop.WaitAsync(TimeSpan.FromSeconds(5));
            var head = await hub.Hub.History.GetPositionAsync("room:bye");
            Assert.Equal(50, head.Head);
        }
        finally
        {
            await hub.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("0.0.0.0:4000")]
    [InlineData("192.168.1.10:4000")]
    [InlineData("[::]:4000")]
    public void A_non_loopback_listen_address_requires_allow_remote(string listen)
    {
        var options = new ServerOptions { Listen = listen, DataDir = Path.GetTempPath() };
        var error = Assert.Throws<ArgumentException>(() => options.Validate());
        Assert.Contains("--allow-remote", error.Message, StringComparison.Ordinal);
        options.AllowRemote = true;
        Assert.NotNull(options.Validate());
    }

    [Theory]
    [InlineData("127.0.0.1:4000", true)]
    [InlineData("localhost:0", true)]
    [InlineData("[::1]:4000", true)]
    [InlineData("4000", false)]
    [InlineData("example.com:4000", false)]
    [InlineData("127.0.0.1:70000", false)]
    public void Listen_addresses_parse_or_explain(string listen, bool valid)
    {
        Assert.Equal(valid, ServerOptions.TryParseListen(listen, out _, out var error));
        Assert.Equal(valid, error.Length == 0);
    }
}
