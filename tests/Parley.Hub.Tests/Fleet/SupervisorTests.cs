using System.Diagnostics;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Parley.Hub.Fleet;

namespace Parley.Hub.Tests.Fleet;

/// <summary>The fleet supervisor with real processes (short <c>sh</c> scripts): start, exit codes, restarts, stop signals, logs, health.</summary>
public sealed partial class SupervisorTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private static readonly FleetActor Admin = new("owner1", IsAdmin: true);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "parley-fleet-" + Guid.NewGuid().ToString("N"));
    private readonly Channel<FleetEvent> _events = Channel.CreateUnbounded<FleetEvent>();
    private FleetService _fleet = null!;

    private FleetOptions Options { get; } = new()
    {
        StopGracePeriod = TimeSpan.FromSeconds(5),
        BackoffInitial = TimeSpan.FromMilliseconds(50),
        BackoffMax = TimeSpan.FromMilliseconds(200),
        CrashLoopRestarts = 3,
        CrashLoopWindow = TimeSpan.FromSeconds(30),
        HealthInterval = TimeSpan.FromMilliseconds(100),
        HealthTimeout = TimeSpan.FromMilliseconds(500),
    };

    public Task InitializeAsync() => Task.CompletedTask;

    private async Task<FleetService> FleetAsync()
    {
        _fleet = new FleetService(new InMemoryInstanceStore(), Options, _directory, TimeProvider.System, NullLogger.Instance);
        _fleet.Changed += e => _events.Writer.TryWrite(e);
        await _fleet.StartAsync();
        return _fleet;
    }

    public async Task DisposeAsync()
    {
        if (_fleet is not null)
        {
            await _fleet.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        }
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static InstanceSpec Sh(string script, RestartPolicy restart = RestartPolicy.Never, Dictionary<string, string>? env = null, string? healthUrl = null) =>
        new("/bin/sh", ["-c", script], null, env ?? [], null, healthUrl, restart);

    // The next status_changed of name with the given status, skipping others.
    private async Task<FleetEvent> StatusAsync(string name, string status, TimeSpan? within = null)
    {
        using var timeout = new CancellationTokenSource(within ?? Wait);
        while (true)
        {
            var e = await _events.Reader.ReadAsync(timeout.Token);
            if (e.Kind == FleetEvent.StatusChanged && e.Instance.Name == name && e.Instance.Runtime.Status == status)
            {
                return e;
            }
        }
    }

    [Fact]
    public async Task Start_runs_the_process_with_a_pid_and_a_quick_exit_is_noticed_with_its_code()
    {
        var fleet = await FleetAsync();
        await fleet.CreateAsync(Admin, "quick", Sh("sleep 0.3; exit 3"));
        var started = await fleet.StartInstanceAsync(Admin, "quick");
        Assert.Equal(InstanceStatus.Running, started.Runtime.Status);
        Assert.NotNull(started.Runtime.Pid);
        Assert.NotNull(started.Runtime.StartedAtMs);
        using (var process = Process.GetProcessById(started.Runtime.Pid!.Value))
        {
            Assert.False(process.HasExited);
        }
        var running = await StatusAsync("quick", InstanceStatus.Running);
        var exited = await StatusAsync("quick", InstanceStatus.Exited);
        Assert.Equal(3, exited.Instance.Runtime.ExitCode);
        Assert.Null(exited.Instance.Runtime.Pid);
        Assert.Null(exited.Instance.Runtime.Signal);
        Assert.Equal(0, exited.Instance.Runtime.Restarts); // never: no restart
        // It ran ~0.3 s; the exit was noticed well within a second of that.
        Assert.InRange(exited.TimestampMs - running.TimestampMs, 250, 1300);
        Assert.Equal(InstanceStatus.Exited, (await fleet.GetAsync("quick")).Runtime.Status);
    }

    [Fact]
    public async Task On_failure_restarts_with_growing_backoff_and_stops_at_the_crash_loop_limit()
    {
        var fleet = await FleetAsync();
        await fleet.CreateAsync(Admin, "flaky", Sh("exit 1", RestartPolicy.OnFailure), start: true);
        var backoffs = new List<FleetEvent>();
        var starts = new List<FleetEvent>();
        using var timeout = new CancellationTokenSource(Wait);
        FleetEvent e;
        do
        {
            e = await _events.Reader.ReadAsync(timeout.Token);
            (e.Instance.Runtime.Status == InstanceStatus.Backoff ? backoffs : e.Instance.Runtime.Status == InstanceStatus.Starting ? starts : []).Add(e);
        }
        while (e.Instance.Runtime.Status != InstanceStatus.CrashLoop);
        Assert.Equal([1, 2, 3], backoffs.Select(b => b.Instance.Runtime.Restarts));
        Assert.Equal(4, starts.Count); // the first start and three restarts
        Assert.Equal(3, e.Instance.Runtime.Restarts);
        Assert.Equal(1, e.Instance.Runtime.ExitCode);
        // Delays 50, 100, 200 ms: each restart waited at least its backoff.
        for (var i = 0; i < 3; i++)
        {
            Assert.True(starts[i + 1].TimestampMs - backoffs[i].TimestampMs >= (50 << i) - 5, $"restart {i + 1} came too soon");
        }
        await Task.Delay(400);
        Assert.Equal(InstanceStatus.CrashLoop, (await fleet.GetAsync("flaky")).Runtime.Status); // no more restarts

        // An operator's start begins afresh: its run starts at 0 restarts, and its first failure is restart 1, not 4.
        await fleet.StartInstanceAsync(Admin, "flaky");
        Assert.Equal(0, (await StatusAsync("flaky", InstanceStatus.Starting)).Instance.Runtime.Restarts);
        Assert.Equal(1, (await StatusAsync("flaky", InstanceStatus.Backoff)).Instance.Runtime.Restarts);
    }

    [Fact]
    public async Task On_failure_leaves_a_clean_exit_alone_and_always_restarts_it()
    {
        var fleet = await FleetAsync();
        await fleet.CreateAsync(Admin, "clean", Sh("exit 0", RestartPolicy.OnFailure), start: true);
        var exited = await StatusAsync("clean", InstanceStatus.Exited);
        Assert.Equal(0, exited.Instance.Runtime.ExitCode);

        await fleet.CreateAsync(Admin, "loop", Sh("exit 0", RestartPolicy.Always), start: true);
        var backoff = await StatusAsync("loop", InstanceStatus.Backoff);
        Assert.Equal(1, backoff.Instance.Runtime.Restarts);
        await StatusAsync("loop", InstanceStatus.CrashLoop);
    }

    [Fact]
    public async Task Stop_sends_SIGTERM_and_a_script_that_traps_it_exits_cleanly()
    {
        var fleet = await FleetAsync();
        var marker = Path.Combine(_directory, "terminated");
        Directory.CreateDirectory(_directory);
        await fleet.CreateAsync(Admin, "polite", Sh($"trap 'echo term > {marker}; exit 0' TERM; echo ready; while true; do sleep 0.05; done"), start: true);
        await WaitForLogAsync("polite", "stdout ready");
        var clock = Stopwatch.StartNew();
        var stopped = await fleet.StopInstanceAsync(Admin, "polite");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"stop took {clock.Elapsed}");
        Assert.Equal(InstanceStatus.Stopped, stopped.Runtime.Status);
        Assert.Equal(0, stopped.Runtime.ExitCode);
        Assert.False(stopped.Record.DesiredRunning);
        Assert.Equal("term", File.ReadAllText(marker).Trim());
        await StatusAsync("polite", InstanceStatus.Stopping);
        await StatusAsync("polite", InstanceStatus.Stopped);
    }

    [Fact]
    public async Task Stop_kills_a_process_that_ignores_SIGTERM_after_the_grace_period()
    {
        Options.StopGracePeriod = TimeSpan.FromMilliseconds(500);
        var fleet = await FleetAsync();
        await fleet.CreateAsync(Admin, "stubborn", Sh("trap '' TERM; echo ready; while true; do sleep 0.05; done"), start: true);
        await WaitForLogAsync("stubborn", "stdout ready");
        var pid = (await fleet.GetAsync("stubborn")).Runtime.Pid!.Value;
        var clock = Stopwatch.StartNew();
        var stopped = await fleet.StopInstanceAsync(Admin, "stubborn");
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(450), TimeSpan.FromSeconds(4));
        Assert.Equal(InstanceStatus.Stopped, stopped.Runtime.Status);
        Assert.Equal(9, stopped.Runtime.Signal);
        Assert.Equal(137, stopped.Runtime.ExitCode);
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
        Assert.Contains("SIGKILL", await File.ReadAllTextAsync(await fleet.LogPathAsync("stubborn")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Output_lands_in_the_log_file_with_receive_times_and_the_environment_is_passed()
    {
        var fleet = await FleetAsync();
        await fleet.CreateAsync(Admin, "talker", Sh("echo \"out $GREETING\"; echo err >&2; echo \"name $PARLEY_INSTANCE\"; exit 0", env: new() { ["GREETING"] = "hello" }), start: true);
        await StatusAsync("talker", InstanceStatus.Exited);
        var path = await fleet.LogPathAsync("talker");
        Assert.Equal(Path.Combine(_directory, "talker", "output.log"), path);
        var lines = await File.ReadAllLinesAsync(path);
        Assert.All(lines, l => Assert.Matches(Stamped(), l));
        var texts = lines.Select(l => l[25..]).ToList(); // past "2026-12-02T14:42:09.123Z "
        Assert.Contains("stdout out hello", texts);
        Assert.Contains("stderr err", texts);
        Assert.Contains("stdout name talker", texts);
        Assert.Contains(texts, t => t.StartsWith("hub started pid ", StringComparison.Ordinal));
        Assert.Contains("hub exited code 0", texts);
        var stamp = DateTimeOffset.Parse(lines[0][..24], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Math.Abs((DateTimeOffset.UtcNow - stamp).TotalSeconds) < 30);
    }

    [Fact]
    public void The_log_rotates_at_the_size_limit_and_keeps_the_retention_count()
    {
        var directory = Path.Combine(_directory, "rotating");
        using (var log = new InstanceLogWriter(directory, maxBytes: 1024, files: 3, TimeProvider.System))
        {
            for (var i = 0; i < 100; i++)
            {
                log.WriteLine("stdout", $"line {i:D3} " + new string('x', 60));
            }
        }
        var files = Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["output.log", "output.log.1", "output.log.2"], files);
        Assert.All(files, f => Assert.InRange(new FileInfo(Path.Combine(directory, f!)).Length, 1, 1024));
        var current = File.ReadAllLines(Path.Combine(directory, "output.log"));
        Assert.EndsWith("line 099 " + new string('x', 60), current[^1], StringComparison.Ordinal);
        var older = File.ReadAllLines(Path.Combine(directory, "output.log.1"));
        Assert.True(string.CompareOrdinal(older[^1][25..], current[0][25..]) < 0); // .1 holds the lines just before
    }

    [Fact]
    public async Task A_failing_health_url_makes_a_live_process_unhealthy()
    {
        var fleet = await FleetAsync();
        await fleet.CreateAsync(Admin, "sick", Sh("sleep 5", healthUrl: "http://127.0.0.1:1/health"), start: true);
        var unhealthy = await StatusAsync("sick", InstanceStatus.Unhealthy, TimeSpan.FromSeconds(5));
        Assert.NotNull(unhealthy.Instance.Runtime.Pid);
        Assert.StartsWith("health check", unhealthy.Instance.Runtime.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_command_that_cannot_start_is_exited_with_the_reason_and_delete_needs_it_stopped()
    {
        var fleet = await FleetAsync();
        await fleet.CreateAsync(Admin, "ghost", new InstanceSpec("/nonexistent/program", [], null, new Dictionary<string, string>(), null, null, RestartPolicy.Never), start: true);
        var view = await fleet.GetAsync("ghost");
        Assert.Equal(InstanceStatus.Exited, view.Runtime.Status);
        Assert.Contains("/nonexistent/program", view.Runtime.Error, StringComparison.Ordinal);

        await fleet.CreateAsync(Admin, "busy", Sh("sleep 5"), start: true);
        var refused = await Assert.ThrowsAsync<FleetException>(() => fleet.DeleteAsync(Admin, "busy"));
        Assert.Equal(FleetErrors.Running, refused.Code);
        await fleet.StopInstanceAsync(Admin, "busy");
        await fleet.DeleteAsync(Admin, "busy");
        Assert.Equal(FleetErrors.NotFound, (await Assert.ThrowsAsync<FleetException>(() => fleet.GetAsync("busy").AsTask())).Code);
        Assert.Equal(FleetErrors.Forbidden, (await Assert.ThrowsAsync<FleetException>(() => fleet.StartInstanceAsync(new FleetActor("bob", false), "ghost"))).Code);
        Assert.Equal(FleetErrors.InvalidInstance, (await Assert.ThrowsAsync<FleetException>(() => fleet.CreateAsync(Admin, "Bad Name", Sh("true")))).Code);
        Assert.Equal(FleetErrors.Exists, (await Assert.ThrowsAsync<FleetException>(() => fleet.CreateAsync(Admin, "ghost", Sh("true")))).Code);
    }

    [Fact]
    public async Task A_terminal_instance_on_a_fleet_without_terminal_sessions_cannot_start_and_says_why()
    {
        var fleet = await FleetAsync(); // no terminal registry
        await fleet.CreateAsync(Admin, "tty", Sh("echo hi") with { Terminal = true }, start: true);
        var view = await fleet.GetAsync("tty");
        Assert.Equal(InstanceStatus.Exited, view.Runtime.Status);
        Assert.Contains("runs no terminal sessions", view.Runtime.Error, StringComparison.Ordinal);
        Assert.Null(view.Runtime.TerminalId);
    }

    private async Task WaitForLogAsync(string name, string text)
    {
        var path = await _fleet.LogPathAsync(name);
        var deadline = DateTime.UtcNow + Wait;
        while (!(File.Exists(path) && (await File.ReadAllTextAsync(path)).Contains(text, StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"'{text}' never reached {path}");
            await Task.Delay(20);
        }
    }

    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout|stderr|hub) ")]
    private static partial Regex Stamped();
}

public sealed class FleetOptionsTests
{
    [Fact]
    public void Defaults_are_valid_and_a_bad_setting_is_named()
    {
        new FleetOptions().Validate();
        var short_ = Assert.Throws<ArgumentException>(() => new FleetOptions { BackoffMax = TimeSpan.FromMilliseconds(1) }.Validate());
        Assert.Contains("BackoffMax", short_.Message, StringComparison.Ordinal);
        Assert.Contains("LogFiles", Assert.Throws<ArgumentException>(() => new FleetOptions { LogFiles = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("LogMaxBytes", Assert.Throws<ArgumentException>(() => new FleetOptions { LogMaxBytes = 10 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("StopGracePeriod", Assert.Throws<ArgumentException>(() => new FleetOptions { StopGracePeriod = TimeSpan.FromSeconds(-1) }.Validate()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Instance_names_and_specs_are_checked_field_by_field()
    {
        Assert.True(InstanceRecord.IsValidName("agent-1_b"));
        Assert.True(InstanceRecord.IsValidName(new string('a', 63)));
        Assert.False(InstanceRecord.IsValidName(new string('a', 64)));
        Assert.False(InstanceRecord.IsValidName("-agent"));
        Assert.False(InstanceRecord.IsValidName("Agent"));
        Assert.False(InstanceRecord.IsValidName(""));
        var ok = new InstanceSpec("/bin/true", [], null, new Dictionary<string, string>(), null, null, RestartPolicy.Never);
        Assert.Null(ok.Check());
        Assert.Equal("cwd", (ok with { Cwd = "relative/dir" }).Check()?.Field);
        Assert.Equal("port", (ok with { Port = 0 }).Check()?.Field);
        Assert.Equal("health_url", (ok with { HealthUrl = "ftp://x/" }).Check()?.Field);
        Assert.Equal("env", (ok with { Env = new Dictionary<string, string> { ["A-B"] = "1" } }).Check()?.Field);
        Assert.Equal("command", (ok with { Command = " " }).Check()?.Field);
    }
}
