using System.Collections.Concurrent;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Tests against the real <c>parley serve</c> process: SIGKILL, SIGTERM, start-up checks.</summary>
public sealed class ProcessTests
{
    [Fact]
    public async Task Every_acked_message_survives_SIGKILL_exactly_once()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-crash-" + Guid.NewGuid().ToString("N"));
        var port = HubProcess.FreePort();
        try
        {
            var acked = new ConcurrentDictionary<string, long>(); // client_id -> offset
            string epoch;
            await using (var hub = await HubProcess.StartAsync(dataDir, port, new Dictionary<string, string>
            {
                ["PARLEY_HUB__PUSHESPERSECOND"] = "100000",
                ["PARLEY_HUB__PUSHBURST"] = "100000",
            }))
            {
                await using var publisher = await RawWebSocket.ConnectAsync(hub.BaseUrl);
                epoch = (await publisher.JoinAsync("room:crash"))["epoch"]!.GetValue<string>();

                // Publish with many pushes in flight; count acks as they come; kill mid-stream.
                var refToClientId = new ConcurrentDictionary<string, string>();
                using var stopPublishing = new CancellationTokenSource();
                var reader = Task.Run(async () =>
                {
                    try
                    {
                        while (true)
                        {
                            var frame = await publisher.ReadFrameAsync(TimeSpan.FromSeconds(30));
                            if (frame.IsClose)
                            {
                                return;
                            }
                            if (frame.Event == "phx_reply" && frame.Status() == "ok" && refToClientId.TryGetValue(frame.Ref!, out var clientId))
                            {
                                acked[clientId] = frame.Response()["offset"]!.GetValue<long>();
                            }
                        }
                    }
                    catch (Exception ex) when (ex is EndOfStreamException or IOException or OperationCanceledException)
                    {
                        // the hub died under us: exactly what this test does
                    }
                });
                var sent = 0;
                var writer = Task.Run(async () =>
                {
                    try
                    {
                        while (!stopPublishing.IsCancellationRequested)
                        {
                            while (sent - acked.Count > 64 && !stopPublishing.IsCancellationRequested)
                            {
                                await Task.Delay(1);
                            }
                            var clientId = $"c{sent}";
                            var @ref = $"r{sent}";
                            refToClientId[@ref] = clientId;
                            await publisher.SendTextAsync($$"""["1","{{@ref}}","room:crash","msg",{"body":"message {{sent}}","client_id":"{{clientId}}"}]""");
                            sent++;
                        }
                    }
                    catch (IOException)
                    {
                    }
                });

                var deadline = DateTime.UtcNow.AddSeconds(30);
                while (acked.Count < 1500 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(10);
                }
                hub.Kill(); // SIGKILL mid-stream: no flush, no shutdown
                await stopPublishing.CancelAsync();
                await Task.WhenAll(reader, writer).WaitAsync(TimeSpan.FromSeconds(30));
                Assert.True(acked.Count >= 1500, $"only {acked.Count} acks before the kill");
                Assert.True(sent > acked.Count, "the kill should land with pushes still in flight");
            }

            await using var restarted = await HubProcess.StartAsync(dataDir, port);
            await using var client = await RawWebSocket.ConnectAsync(restarted.BaseUrl);
            var join = await client.JoinAsync("room:crash", new { since = 0, epoch });
            Assert.True(join["recovered"]!.GetValue<bool>());
            var head = join["offset"]!.GetValue<long>();
            Assert.True(head >= acked.Count);

            var seen = new Dictionary<string, long>();
            for (long expected = 1; expected <= head; expected++)
            {
                var frame = await client.ReadUntilAsync(f => f.Event == "msg");
                Assert.Equal(expected, frame.Payload_!["offset"]!.GetValue<long>());
                var clientId = frame.Payload_!["client_id"]!.GetValue<string>();
                Assert.True(seen.TryAdd(clientId, expected), $"{clientId} stored twice");
            }
            foreach (var (clientId, offset) in acked)
            {
                Assert.True(seen.TryGetValue(clientId, out var storedAt), $"acked {clientId} lost");
                Assert.Equal(offset, storedAt);
            }
        }
        finally
        {
            TestHub.TryDelete(dataDir);
        }
    }

    [Fact]
    public async Task SIGTERM_closes_sockets_with_1001_and_exits_within_5_seconds()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-term-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using var hub = await HubProcess.StartAsync(dataDir, HubProcess.FreePort());
            await using var client = await RawWebSocket.ConnectAsync(hub.BaseUrl);
            await client.JoinAsync("room:term");
            var exit = hub.TerminateAsync(TimeSpan.FromSeconds(10));
            var close = await client.ReadCloseAsync();
            Assert.Equal(1001, close.CloseCode);
            Assert.Equal("server shutting down", close.CloseReason);
            var took = await exit;
            Assert.True(took < TimeSpan.FromSeconds(5), $"exit took {took}");
            Assert.Equal(0, hub.ExitCode);
        }
        finally
        {
            TestHub.TryDelete(dataDir);
        }
    }

    [Fact]
    public async Task Serve_refuses_a_remote_address_without_allow_remote_and_says_why()
    {
        var (exitCode, _, stderr) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(60), "serve", "--listen", "0.0.0.0:0", "--data", Path.GetTempPath());
        Assert.Equal(2, exitCode);
        Assert.Contains("--allow-remote", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_prints_url_data_dir_and_log_file_and_writes_redacted_logs()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-log-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var hub = await HubProcess.StartAsync(dataDir, HubProcess.FreePort(), new Dictionary<string, string> { ["PARLEY_LOG_LEVEL"] = "debug" }))
            {
                // A rejected upgrade logs nothing secret, even with the token in the URL and the subprotocol.
                var (socket, response) = await RawWebSocket.TryConnectAsync(hub.BaseUrl, "/socket/websocket?vsn=9&token=hunter2-secret", "phoenix, base64url.bearer.phx.aHVudGVyMi1zZWNyZXQ");
                await socket.DisposeAsync();
                Assert.StartsWith("HTTP/1.1 400", response, StringComparison.Ordinal);
                await using var client = await RawWebSocket.ConnectAsync(hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=hunter2-secret");
                await client.SendTextAsync("not json token=hunter2-secret");
                await client.ReadCloseAsync();
                await hub.TerminateAsync(TimeSpan.FromSeconds(10));
                Assert.DoesNotContain("hunter2", hub.Stderr, StringComparison.Ordinal);
            }
            var logFile = Path.Combine(dataDir, "logs", "parley.log");
            Assert.True(File.Exists(logFile), "log file in the data dir");
            var log = await File.ReadAllTextAsync(logFile);
            Assert.Contains("listening", log, StringComparison.Ordinal);
            Assert.Contains("Closing connection", log, StringComparison.Ordinal);
            Assert.DoesNotContain("hunter2", log, StringComparison.Ordinal);
        }
        finally
        {
            TestHub.TryDelete(dataDir);
        }
    }

    [Fact]
    public async Task Serve_help_lists_its_flags()
    {
        var (exitCode, stdout, _) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(60), "serve", "--help");
        Assert.Equal(0, exitCode);
        foreach (var flag in new[] { "--listen", "--data", "--allow-remote", "--config", "--json" })
        {
            Assert.Contains(flag, stdout, StringComparison.Ordinal);
        }
    }
}
