using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>
/// <c>parley run</c> as a real child process publishing to a real hub (docs/protocol.md §17), and hosting its
/// session itself when no hub is configured.
/// </summary>
public sealed partial class TerminalRunTests : AuthenticatedHubTest, IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("parley-run-test-").FullName;

    public void Dispose() => TestHub.TryDelete(_home);

    // No profile, no PARLEY_SERVER from the environment running the tests: only what a test passes counts.
    private Dictionary<string, string> CliEnvironment() => new()
    {
        ["XDG_CONFIG_HOME"] = Path.Combine(_home, "config"),
        ["XDG_STATE_HOME"] = Path.Combine(_home, "state"),
        ["PARLEY_SERVER"] = "",
        ["PARLEY_TOKEN"] = "",
        ["PARLEY_USER"] = "",
    };

    private string Recordings => Path.Combine(_home, "rec");

    private static string RecordedId(string stderr) => RecordedLine().Match(stderr) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException("no 'recorded ID' line in:\n" + stderr);

    [GeneratedRegex(@"recorded (\S+) \(")]
    private static partial Regex RecordedLine();

    [GeneratedRegex(@"watch live at (http://\S+)")]
    private static partial Regex WatchLine();

    [Fact]
    public async Task The_hub_receives_the_whole_session_byte_for_byte_with_the_exit_code()
    {
        var token = await TokenAsync("alice");
        var (code, stdout, stderr) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(60), CliEnvironment(),
            "run", "--server", Hub.BaseUrl.ToString(), "--token", token, "--record", Recordings, "--name", "burst", "--",
            "sh", "-c", "head -c 1500000 /dev/urandom | od -An -tx1 | head -c 3000000; printf '\\377\\376 done\\n'; exit 5");
        Assert.Equal(5, code);
        Assert.Contains($"watch live at {new Uri(Hub.BaseUrl, "/terminals/")}", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("did not receive", stderr, StringComparison.Ordinal);
        var id = RecordedId(stderr);
        var local = await File.ReadAllBytesAsync(Path.Combine(Recordings, id + ".output"));
        Assert.True(local.Length > 3_000_000, $"{local.Length} bytes recorded");
        Assert.Equal(local, await File.ReadAllBytesAsync(Path.Combine(Hub.DataDir, "terminals", id + ".output")));
        Assert.True(stdout.Length > 0);

        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var all = JsonDocument.Parse(await http.GetStringAsync(new Uri(Hub.BaseUrl, "/api/terminals?all=true"))).RootElement.GetProperty("sessions");
        var session = all.EnumerateArray().Single(s => s.GetProperty("id").GetString() == id);
        Assert.Equal(("burst", "alice", 5, false, (long)local.Length), (session.GetProperty("name").GetString(), session.GetProperty("owner").GetString(),
            session.GetProperty("exit_code").GetInt32(), session.GetProperty("live").GetBoolean(), session.GetProperty("output_size").GetInt64()));
        Assert.Equal("done", session.GetProperty("last_line").GetString()![^4..]);
    }

    [Fact]
    public async Task A_stalled_viewer_does_not_slow_the_command()
    {
        var token = await TokenAsync("alice");
        var watcher = await ConnectAsUserAsync("bob");
        Assert.True((await watcher.JoinAsync("term:lobby")).IsOk);
        // The command times its own 16 MB write through the terminal, after a pause that lets a viewer join first.
        var script = "sleep 1.5; s=$(date +%s%N); head -c 16000000 /dev/zero | tr '\\0' a; e=$(date +%s%N); echo; echo ELAPSED $(( (e - s) / 1000000 ))";

        async Task<long> TimedRunAsync(bool stall)
        {
            var run = HubProcess.RunCliAsync(TimeSpan.FromSeconds(90), CliEnvironment(),
                "run", "--server", Hub.BaseUrl.ToString(), "--token", token, "--record", Recordings, "--", "sh", "-c", script);
            RawWebSocket? stalled = null;
            var earlier = Directory.Exists(Recordings) ? Directory.GetFiles(Recordings, "*.meta.json").Select(f => Path.GetFileName(f)[..^".meta.json".Length]).ToHashSet() : [];
            if (stall)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                string id;
                while (true)
                {
                    var message = await watcher.Messages.ReadAsync(timeout.Token);
                    if (message.Event == "session_started" && !earlier.Contains(message.Payload.GetProperty("session").GetProperty("id").GetString()!))
                    {
                        id = message.Payload.GetProperty("session").GetProperty("id").GetString()!;
                        break;
                    }
                }
                (stalled, var response) = await RawWebSocket.TryConnectAsync(Hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=" + Uri.EscapeDataString(await TokenAsync("carol" + id[^4..])), receiveBufferBytes: 4096);
                Assert.StartsWith("HTTP/1.1 101", response, StringComparison.Ordinal);
                await stalled.JoinAsync("term:" + id); // and then never reads
            }
            var (code, stdout, stderr) = await run;
            Assert.True(code == 0, stderr);
            if (stalled is not null)
            {
                await stalled.DisposeAsync();
            }
            return long.Parse(ElapsedLine().Match(stdout).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        var alone = await TimedRunAsync(stall: false);
        var withStalled = await TimedRunAsync(stall: true);
        Console.WriteLine($"16 MB through parley run: alone {alone} ms, with a stalled viewer {withStalled} ms");
        // Loose on purpose (a loaded 2-core machine); a viewer that blocked the command would hold it forever.
        Assert.True(withStalled < alone * 3 + 2000, $"alone {alone} ms, with a stalled viewer {withStalled} ms");
    }

    [GeneratedRegex(@"ELAPSED (\d+)")]
    private static partial Regex ElapsedLine();

    [Fact]
    public async Task With_no_hub_configured_the_run_hosts_its_session_on_loopback_and_lists_it_in_the_local_registry()
    {
        using var process = HubProcess.StartCli(CliEnvironment(), "run", "--record", Recordings, "--", "sh", "-c", "echo ready; sleep 4; echo bye");
        var stderrLines = new List<string>();
        var url = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (stderrLines)
            {
                stderrLines.Add(e.Data);
            }
            if (WatchLine().Match(e.Data) is { Success: true } m)
            {
                url.TrySetResult(new Uri(m.Groups[1].Value));
            }
        };
        process.BeginErrorReadLine();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var page = await url.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("127.0.0.1", page.Host);
        var id = page.AbsolutePath["/terminals/".Length..];

        var registry = Path.Combine(_home, "state", "parley", "live-terminals.json");
        var entries = JsonDocument.Parse(await File.ReadAllTextAsync(registry)).RootElement;
        var entry = entries.EnumerateArray().Single(e => e.GetProperty("id").GetString() == id);
        Assert.Equal((page.ToString(), process.Id), (entry.GetProperty("url").GetString(), entry.GetProperty("pid").GetInt32()));

        // Anyone on this machine watches without a credential.
        await using var viewer = new ParleyClient(new ParleyClientOptions { Server = new Uri(page.GetLeftPart(UriPartial.Authority)), MessageBuffer = 1000 });
        await viewer.StartAsync();
        var joined = await viewer.JoinAsync("term:" + id);
        Assert.True(joined.IsOk, joined.Response.ToString());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new System.Text.StringBuilder();
        while (!seen.ToString().Contains("ready", StringComparison.Ordinal))
        {
            var fetched = await viewer.PushAsync("term:" + id, "fetch_output", new { offset = 0, limit = 4096 }, timeout.Token);
            seen.Clear().Append(System.Text.Encoding.UTF8.GetString(fetched.Binary.Span));
            await Task.Delay(100, timeout.Token);
        }
        JsonElement exit = default;
        while (exit.ValueKind == JsonValueKind.Undefined)
        {
            var message = await viewer.Messages.ReadAsync(timeout.Token);
            if (message.Event == "exit")
            {
                exit = message.Payload;
            }
        }
        Assert.Equal(0, exit.GetProperty("exit_code").GetInt32());
        await process.WaitForExitAsync(timeout.Token);
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("bye", await stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(id, await File.ReadAllTextAsync(registry), StringComparison.Ordinal);
    }

    private static byte[] Chunk(long offset, string text)
    {
        var data = System.Text.Encoding.UTF8.GetBytes(text);
        var payload = new byte[8 + data.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(payload, offset);
        data.CopyTo(payload, 8);
        return payload;
    }

    [Fact]
    public async Task Attach_mirrors_the_tail_then_live_output_until_the_session_ends()
    {
        var aliceToken = await TokenAsync("alice");
        var owner = await ConnectAsync(aliceToken);
        var hello = new System.Text.Json.Nodes.JsonObject { ["role"] = "owner", ["command"] = new System.Text.Json.Nodes.JsonArray("bash"), ["cols"] = 80, ["rows"] = 24, ["started_at"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
        Assert.True((await owner.JoinAsync("term:mirror", joinParams: hello)).IsOk);
        Assert.True((await owner.PushBinaryAsync("term:mirror", "record_output", Chunk(0, "early-line\r\n"))).IsOk);

        using var attach = HubProcess.StartCli(CliEnvironment(), "attach", "mirror", "--server", Hub.BaseUrl.ToString(), "--token", await TokenAsync("bob"));
        var stdout = attach.StandardOutput.ReadToEndAsync();
        var stderr = attach.StandardError.ReadToEndAsync();
        // Live output follows once the viewer is in (the lobby counts it).
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", aliceToken);
        var clock = Stopwatch.StartNew();
        while (JsonDocument.Parse(await http.GetStringAsync(new Uri(Hub.BaseUrl, "/api/terminals"))).RootElement.GetProperty("sessions")[0].GetProperty("viewers").GetInt32() == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "parley attach never joined: " + (attach.HasExited ? await stderr : ""));
            await Task.Delay(100);
        }
        Assert.True((await owner.PushBinaryAsync("term:mirror", "record_output", Chunk(12, "live-line\r\n"))).IsOk);
        Assert.True((await owner.PushAsync("term:mirror", "exit", new { exit_code = 4 })).IsOk);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await attach.WaitForExitAsync(timeout.Token);
        var text = await stdout;
        Assert.True(attach.ExitCode == 0, await stderr);
        Assert.Contains("read-only", text, StringComparison.Ordinal);
        var early = text.IndexOf("early-line\r\n", StringComparison.Ordinal);
        var live = text.IndexOf("live-line\r\n", StringComparison.Ordinal);
        Assert.True(early >= 0 && live > early, text);
        Assert.Equal(early, text.LastIndexOf("early-line", StringComparison.Ordinal)); // once: no overlap at the seam
        Assert.Contains("the session ended (exit 4)", text[live..], StringComparison.Ordinal);

        // A session that does not exist: exit 4 with the reason.
        var (code, _, missing) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(30), CliEnvironment(), "attach", "nope", "--server", Hub.BaseUrl.ToString(), "--token", aliceToken);
        Assert.Equal(4, code);
        Assert.Contains("session_not_found", missing, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_owner_grants_input_with_term_grant_and_the_viewer_is_told_at_once()
    {
        var aliceToken = await TokenAsync("alice");
        var owner = await ConnectAsync(aliceToken);
        var hello = new System.Text.Json.Nodes.JsonObject { ["role"] = "owner", ["command"] = new System.Text.Json.Nodes.JsonArray("bash"), ["cols"] = 80, ["rows"] = 24, ["started_at"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
        Assert.True((await owner.JoinAsync("term:granted", joinParams: hello)).IsOk);
        var bob = await ConnectAsUserAsync("bob");
        Assert.False((await bob.JoinAsync("term:granted")).Response.GetProperty("can_input").GetBoolean());

        var (code, stdout, stderr) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(30), CliEnvironment(), "term", "grant", "granted", "bob", "--server", Hub.BaseUrl.ToString(), "--token", aliceToken);
        Assert.True(code == 0, stderr);
        Assert.Contains("bob may now type into granted", stdout, StringComparison.Ordinal);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var message = await bob.Messages.ReadAsync(timeout.Token);
            if (message.Event == "can_input")
            {
                Assert.True(message.Payload.GetProperty("can_input").GetBoolean());
                break;
            }
        }
        Assert.True((await bob.PushAsync("term:granted", "input", new { data_b64 = "bHMNCg==" })).IsOk);

        // Only the owner (or an admin) grants: bob cannot hand it on.
        (code, _, stderr) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(30), CliEnvironment(), "term", "grant", "granted", "carol", "--server", Hub.BaseUrl.ToString(), "--token", await TokenAsync("bob2"));
        Assert.Equal(3, code);
        Assert.Contains("forbidden", stderr, StringComparison.Ordinal);
        (code, _, _) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(30), CliEnvironment(), "term", "grant", "granted", "bob", "--revoke", "--server", Hub.BaseUrl.ToString(), "--token", aliceToken);
        Assert.Equal(0, code);
        Assert.Equal("forbidden", (await bob.PushAsync("term:granted", "input", new { data_b64 = "eA==" })).Reason);
    }

    [Fact]
    public async Task Attach_finds_a_locally_hosted_session_without_a_hub()
    {
        using var run = HubProcess.StartCli(CliEnvironment(), "run", "--record", Recordings, "--", "sh", "-c", "echo first-out; sleep 3; echo second-out");
        var url = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        run.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null && WatchLine().Match(e.Data) is { Success: true } m)
            {
                url.TrySetResult(new Uri(m.Groups[1].Value));
            }
        };
        run.BeginErrorReadLine();
        var runOut = run.StandardOutput.ReadToEndAsync();
        var id = (await url.Task.WaitAsync(TimeSpan.FromSeconds(30))).AbsolutePath["/terminals/".Length..];

        var (listed, liveOut, _) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(30), CliEnvironment(), "term", "live");
        Assert.Equal(0, listed);
        Assert.Contains(id, liveOut, StringComparison.Ordinal);
        var (code, stdout, stderr) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(60), CliEnvironment(), "attach", id);
        Assert.True(code == 0, stderr);
        Assert.True(stdout.IndexOf("first-out", StringComparison.Ordinal) is var first && first >= 0 && stdout.IndexOf("second-out", StringComparison.Ordinal) > first, stdout);
        Assert.Contains("the session ended (exit 0)", stdout, StringComparison.Ordinal);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await run.WaitForExitAsync(timeout.Token);
        await runOut;

        (code, _, stderr) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(30), CliEnvironment(), "attach", id);
        Assert.Equal(4, code);
        Assert.Contains("no session", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hub_killed_and_restarted_mid_session_ends_up_with_the_whole_session()
    {
        var port = HubProcess.FreePort();
        var data = Path.Combine(_home, "hub");
        var hub = await HubProcess.StartAsync(data, port);
        var server = $"http://127.0.0.1:{port}";
        var run = HubProcess.RunCliAsync(TimeSpan.FromSeconds(90), CliEnvironment(), "run", "--server", server, "--record", Recordings, "--",
            "sh", "-c", "i=0; while [ $i -lt 80 ]; do i=$((i+1)); echo \"line $i $(head -c 300 /dev/zero | tr '\\0' z)\"; sleep 0.05; done");
        await Task.Delay(1500);
        hub.Kill(); // SIGKILL: no goodbye to anyone
        await Task.Delay(1000);
        await using var restarted = await HubProcess.StartAsync(data, port);
        var (code, _, stderr) = await run;
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("did not receive", stderr, StringComparison.Ordinal);
        var id = RecordedId(stderr);
        var local = await File.ReadAllBytesAsync(Path.Combine(Recordings, id + ".output"));
        Assert.Contains("line 80 ", System.Text.Encoding.UTF8.GetString(local), StringComparison.Ordinal);
        Assert.Equal(local, await File.ReadAllBytesAsync(Path.Combine(data, "terminals", id + ".output")));
        await hub.DisposeAsync();
    }

    [Fact]
    public async Task The_local_registry_prunes_entries_whose_run_is_gone()
    {
        var state = Path.Combine(_home, "state", "parley");
        Directory.CreateDirectory(state);
        // A run that was killed (its pid gone: a child that already exited) and one that is alive (this test process).
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await gone.WaitForExitAsync();
        string Entry(string id, int pid) => $$"""{"id":"{{id}}","name":"sh","command":["sh"],"pid":{{pid}},"child_pid":1,"prefix":"/x","url":"http://127.0.0.1:1/terminals/{{id}}","started_at":"2026-12-03T08:00:00+00:00","allow_input":false}""";
        await File.WriteAllTextAsync(Path.Combine(state, "live-terminals.json"), $"[{Entry("dead-run", gone.Id)},{Entry("live-run", System.Environment.ProcessId)}]");

        var (code, stdout, stderr) = await HubProcess.RunCliAsync(TimeSpan.FromSeconds(30), CliEnvironment(), "term", "live", "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("live-run", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("dead-run", stdout, StringComparison.Ordinal);
        var kept = await File.ReadAllTextAsync(Path.Combine(state, "live-terminals.json"));
        Assert.DoesNotContain("dead-run", kept, StringComparison.Ordinal);
        Assert.Contains("live-run", kept, StringComparison.Ordinal);
    }
}
