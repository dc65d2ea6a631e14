using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>The fleet with the built <c>parley serve</c>: children stop with the hub and come back with the next start.</summary>
public sealed class FleetProcessTests
{
    [Fact]
    public async Task SIGTERM_stops_the_children_and_the_next_start_brings_back_those_marked_running()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-fleet-proc-" + Guid.NewGuid().ToString("N"));
        var port = HubProcess.FreePort();
        var environment = new Dictionary<string, string> { ["PARLEY_FLEET__STOPGRACEPERIOD"] = "00:00:02" };
        try
        {
            int firstPid;
            await using (var hub = await HubProcess.StartAsync(dataDir, port, environment))
            {
                using var http = Client(hub, dataDir);
                using var created = await http.PostAsJsonAsync("/api/instances", new { name = "agent", command = "/bin/sh", args = new[] { "-c", "exec sleep 60" }, start = true });
                var instance = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
                Assert.True(created.IsSuccessStatusCode, instance.ToJsonString());
                firstPid = instance["pid"]!.GetValue<int>();
                using var idle = await http.PostAsJsonAsync("/api/instances", new { name = "idle", command = "/bin/true" });
                Assert.True(idle.IsSuccessStatusCode);

                var took = await hub.TerminateAsync(TimeSpan.FromSeconds(20));
                Assert.True(took < TimeSpan.FromSeconds(8), $"exit took {took}");
                Assert.Equal(0, hub.ExitCode);
            }
            Assert.Throws<ArgumentException>(() => System.Diagnostics.Process.GetProcessById(firstPid));

            await using (var restarted = await HubProcess.StartAsync(dataDir, port, environment))
            {
                using var http = Client(restarted, dataDir);
                var agent = JsonNode.Parse(await http.GetStringAsync("/api/instances/agent"))!;
                Assert.Equal("running", agent["status"]!.GetValue<string>());
                Assert.NotEqual(firstPid, agent["pid"]!.GetValue<int>());
                Assert.Equal("stopped", JsonNode.Parse(await http.GetStringAsync("/api/instances/idle"))!["status"]!.GetValue<string>());
                Assert.True(File.Exists(Path.Combine(dataDir, "fleet", "agent", "output.log")));
                await restarted.TerminateAsync(TimeSpan.FromSeconds(20));
            }
        }
        finally
        {
            TestHub.TryDelete(dataDir);
        }
    }

    [Fact]
    public async Task A_hub_killed_with_SIGKILL_orphans_its_children_and_the_next_start_kills_them_before_starting_anew()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-fleet-kill-" + Guid.NewGuid().ToString("N"));
        var port = HubProcess.FreePort();
        try
        {
            int orphanPid;
            await using (var hub = await HubProcess.StartAsync(dataDir, port))
            {
                using var http = Client(hub, dataDir);
                using var created = await http.PostAsJsonAsync("/api/instances", new { name = "agent", command = "/bin/sh", args = new[] { "-c", "exec sleep 60" }, start = true });
                orphanPid = JsonNode.Parse(await created.Content.ReadAsStringAsync())!["pid"]!.GetValue<int>();
                hub.Kill();
            }
            using (var orphan = System.Diagnostics.Process.GetProcessById(orphanPid))
            {
                Assert.False(orphan.HasExited); // nothing stopped it
            }

            await using var restarted = await HubProcess.StartAsync(dataDir, port);
            using var again = Client(restarted, dataDir);
            var agent = JsonNode.Parse(await again.GetStringAsync("/api/instances/agent"))!;
            Assert.Equal("running", agent["status"]!.GetValue<string>());
            Assert.NotEqual(orphanPid, agent["pid"]!.GetValue<int>());
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (IsAlive(orphanPid))
            {
                Assert.True(DateTime.UtcNow < deadline, $"the orphan {orphanPid} still runs");
                await Task.Delay(50);
            }
            Assert.Contains($"killed pid {orphanPid}", await File.ReadAllTextAsync(Path.Combine(dataDir, "fleet", "agent", "output.log")), StringComparison.Ordinal);
            await restarted.TerminateAsync(TimeSpan.FromSeconds(20));
        }
        finally
        {
            TestHub.TryDelete(dataDir);
        }
    }

    // A killed orphan is reaped by init; until then it is a zombie, which /proc shows as state Z.
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task Fleet_logs_follow_keeps_printing_across_a_hub_restart_without_repeating_a_line()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "parley-fleet-logs-" + Guid.NewGuid().ToString("N"));
        var config = Path.Combine(dataDir, "config");
        var port = HubProcess.FreePort();
        var hub = await HubProcess.StartAsync(dataDir, port);
        System.Diagnostics.Process? follow = null;
        try
        {
            using (var http = Client(hub, dataDir))
            {
                using var created = await http.PostAsJsonAsync("/api/instances", new
                {
                    name = "ticker",
                    command = "/bin/sh",
                    args = new[] { "-c", "i=0; while true; do echo tick-$$-$i; i=$((i+1)); sleep 0.05; done" },
                    start = true,
                });
                Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
            }
            var key = File.ReadAllText(Path.Combine(dataDir, ParleyServerHost.InitialOwnerKeyFileName)).Trim();
            follow = HubProcess.StartCli(new Dictionary<string, string> { ["XDG_CONFIG_HOME"] = config },
                "fleet", "logs", "ticker", "-f", "--tail", "1", "--json", "--server", hub.BaseUrl.ToString(), "--token", key);
            var lines = new List<string>();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            async Task ReadAsync(Func<bool> enough)
            {
                while (!enough())
                {
                    var line = await follow.StandardOutput.ReadLineAsync(timeout.Token);
                    Assert.NotNull(line);
                    lines.Add(JsonNode.Parse(line)!["line"]!.GetValue<string>());
                }
            }

            await ReadAsync(() => lines.Count >= 5);
            var before = lines.Count;
            static string? PidOf(string line) => line.Split(" stdout tick-") is [_, var rest] ? rest.Split('-')[0] : null;
            var firstPid = PidOf(lines[^1]);
            await hub.TerminateAsync(TimeSpan.FromSeconds(20));
            await hub.DisposeAsync();
            hub = await HubProcess.StartAsync(dataDir, port); // the instance is marked running: it starts again
            // Lines of the instance's new process (a new pid) reach the follower after the restart.
            await ReadAsync(() => lines.Skip(before).Count(l => PidOf(l) is { } pid && pid != firstPid) >= 5);

            Assert.Equal(lines.Count, lines.Distinct().Count()); // nothing printed twice after the rejoin's backlog
            Assert.Equal(lines.OrderBy(l => l[..24], StringComparer.Ordinal), lines); // in time order
        }
        finally
        {
            follow?.Kill(entireProcessTree: true);
            follow?.Dispose();
            await hub.DisposeAsync();
            TestHub.TryDelete(dataDir);
        }
    }

    private static HttpClient Client(HubProcess hub, string dataDir)
    {
        var http = new HttpClient { BaseAddress = hub.BaseUrl, Timeout = TimeSpan.FromSeconds(20) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", File.ReadAllText(Path.Combine(dataDir, ParleyServerHost.InitialOwnerKeyFileName)).Trim());
        return http;
    }
}
