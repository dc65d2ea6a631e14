using System.ComponentModel;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Parley.Hub.Terminals;

namespace Parley.Hub.Fleet;

/// <summary>
/// Supervises one instance's process (docs/fleet.md). Every step — an operator's start or stop, an exit, a
/// backoff timer, a health result — runs on one queue, one at a time, so the runner's state needs no lock and
/// status changes are published in the order they happen. A generation number, bumped by each start and stop,
/// makes late exits, timers and health results of an earlier process harmless.
/// </summary>
internal sealed class InstanceRunner : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = Timeout.InfiniteTimeSpan };
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(5);

    private readonly Channel<Func<Task>> _steps = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly string _name;
    private readonly string _directory;
    private readonly FleetOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<InstanceRuntime, Task> _publish;
    private readonly TerminalRegistry? _terminals;
    private readonly string _owner;
    private readonly InstanceLogWriter _log;
    private readonly string _pidFile;
    private readonly Queue<long> _recentRestarts = new();
    private readonly Task _loop;
    private InstanceRuntime _runtime = InstanceRuntime.Initial;
    private InstanceSpec? _spec;
    private IInstanceProcess? _process;
    private Task? _exited;
    private CancellationTokenSource? _health;
    private int _generation;
    private int _consecutiveFailures;

    /// <param name="directory">The instance's directory (<c>&lt;data dir&gt;/fleet/&lt;name&gt;</c>): its log, and its default working directory.</param>
    /// <param name="publish">Called with every new runtime state, in order; the runner waits for it.</param>
    /// <param name="terminals">Where an instance with <c>terminal: true</c> is hosted; null on a hub without terminals (such an instance cannot start).</param>
    /// <param name="owner">Who the instance's terminal sessions belong to (its creator).</param>
    public InstanceRunner(string name, string directory, FleetOptions options, TimeProvider time, ILogger logger, Func<InstanceRuntime, Task> publish, TerminalRegistry? terminals = null, string owner = "")
    {
        _owner = owner;
        _terminals = terminals;
        _name = name;
        _directory = directory;
        _options = options;
        _time = time;
        _logger = logger;
        _publish = publish;
        _log = new InstanceLogWriter(directory, options.LogMaxBytes, options.LogFiles, time);
        _pidFile = Path.Combine(directory, PidFileName);
        _loop = Task.Run(RunAsync);
    }

    /// <summary>The file that names the live process (<c>pid start-time</c>) while one runs, so a hub that was killed can find it.</summary>
    public const string PidFileName = "pid";

    /// <summary>The current runtime state (as last published).</summary>
    public InstanceRuntime Runtime => Volatile.Read(ref _runtime);

    /// <summary>The log file.</summary>
    public string LogPath => _log.FilePath;

    /// <summary>The instance's log as a live feed.</summary>
    public LogFeed LogFeed => _log.Feed;

    /// <summary>Starts the process unless one is alive; resets the restart count and backoff. Completes once it runs (or failed to).</summary>
    public Task StartAsync(InstanceSpec spec) => Post(() => StartCoreAsync(spec, byOperator: true));

    /// <summary>Stops the process (SIGTERM, SIGKILL after the grace period) and cancels any pending restart. Completes once it is gone.</summary>
    public Task StopAsync() => Post(StopCoreAsync);

    /// <summary>Stops the process if alive, then starts it again.</summary>
    public Task RestartAsync(InstanceSpec spec) => Post(async () =>
    {
        await StopCoreAsync();
        await StartCoreAsync(spec, byOperator: true);
    });

    private Task Post(Func<Task> step)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var queued = _steps.Writer.TryWrite(async () =>
        {
            try
            {
                await step();
                done.TrySetResult();
            }
            catch (Exception ex)
            {
                FleetLog.StepFailed(_logger, _name, ex);
                done.TrySetException(ex);
            }
        });
        if (!queued)
        {
            done.TrySetResult(); // disposed: the hub is stopping and the process is stopped
        }
        return done.Task;
    }

    private async Task RunAsync()
    {
        await foreach (var step in _steps.Reader.ReadAllAsync())
        {
            await step();
        }
    }

    private async Task SetAsync(InstanceRuntime runtime)
    {
        Volatile.Write(ref _runtime, runtime);
        await _publish(runtime);
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private async Task StartCoreAsync(InstanceSpec spec, bool byOperator)
    {
        if (byOperator)
        {
            if (_process is not null)
            {
                return;
            }
            _recentRestarts.Clear();
            _consecutiveFailures = 0;
            _runtime = _runtime with { Restarts = 0 };
        }
        _spec = spec;
        var generation = ++_generation;
        await SetAsync(_runtime with { Status = InstanceStatus.Starting, Pid = null, Error = null });
        IInstanceProcess process;
        try
        {
            process = Launch(spec);
        }
        catch (Exception ex) when (ex is Win32Exception or InvalidOperationException or IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            var reason = ex is Win32Exception ? $"cannot run {spec.Command}: {ex.Message}" : ex.Message;
            FleetLog.StartFailed(_logger, _name, reason);
            _log.WriteLine("hub", "start failed: " + reason);
            await HandleExitAsync(generation, exitCode: null, signal: null, reason);
            return;
        }
        _process = process;
        WritePidFile(process.Pid);
        _exited = process.Exited;
        _ = _exited.ContinueWith(_ => Post(() => OnExitedAsync(generation)), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        FleetLog.Started(_logger, _name, process.Pid);
        _log.WriteLine("hub", process.TerminalId is { } terminal ? $"started pid {process.Pid} on terminal {terminal}" : $"started pid {process.Pid}");
        await SetAsync(_runtime with { Status = InstanceStatus.Running, Pid = process.Pid, StartedAtMs = Now, TerminalId = process.TerminalId });
        if (spec.HealthUrl is { } url)
        {
            _health = new CancellationTokenSource();
            _ = HealthLoopAsync(generation, new Uri(url), _health.Token);
        }
    }

    private IInstanceProcess Launch(InstanceSpec spec)
    {
        var cwd = spec.Cwd ?? _directory;
        if (!Directory.Exists(cwd))
        {
            throw new IOException($"the working directory {cwd} does not exist");
        }
        if (!spec.Terminal)
        {
            return PipedInstanceProcess.Start(_name, spec, cwd, _log, _logger);
        }
        var terminals = _terminals ?? throw new NotSupportedException("this hub runs no terminal sessions, so an instance with terminal: true cannot start");
        return TerminalInstanceProcess.Start(_name, spec, cwd, _owner, terminals, _options, _log, _logger);
    }

    private (int Code, int? Signal) TakeExit()
    {
        var process = _process!;
        var (code, signal) = process.Exit;
        process.Dispose();
        File.Delete(_pidFile);
        _process = null;
        _exited = null;
        _health?.Cancel();
        _health?.Dispose();
        _health = null;
        return (code, signal);
    }

    private async Task OnExitedAsync(int generation)
    {
        if (generation != _generation || _process is null)
        {
            return; // a stop or restart dealt with this process
        }
        var (code, signal) = TakeExit();
        await HandleExitAsync(generation, code, signal, error: null);
    }

    private async Task HandleExitAsync(int generation, int? exitCode, int? signal, string? error)
    {
        var now = Now;
        FleetLog.Exited(_logger, _name, exitCode, signal);
        if (exitCode is not null)
        {
            _log.WriteLine("hub", signal is { } s ? $"exited code {exitCode} (signal {s})" : $"exited code {exitCode}");
        }
        var exited = _runtime with { Status = InstanceStatus.Exited, Pid = null, ExitCode = exitCode, Signal = signal, LastExitAtMs = now, Error = error };
        var restart = _spec!.Restart switch
        {
            RestartPolicy.Always => true,
            RestartPolicy.OnFailure => exitCode != 0,
            _ => false,
        };
        if (!restart)
        {
            await SetAsync(exited);
            return;
        }
        var window = (long)_options.CrashLoopWindow.TotalMilliseconds;
        if (_runtime.StartedAtMs is { } started && exitCode is not null && now - started >= window)
        {
            _consecutiveFailures = 0; // it ran long enough: start the backoff afresh
        }
        while (_recentRestarts.Count > 0 && now - _recentRestarts.Peek() >= window)
        {
            _recentRestarts.Dequeue();
        }
        if (_recentRestarts.Count >= _options.CrashLoopRestarts)
        {
            FleetLog.CrashLoop(_logger, _name, _recentRestarts.Count);
            _log.WriteLine("hub", $"crash loop: {_recentRestarts.Count} restarts within {_options.CrashLoopWindow.TotalSeconds:0.###} s; not restarting");
            await SetAsync(exited with { Status = InstanceStatus.CrashLoop });
            return;
        }
        var delay = TimeSpan.FromTicks(Math.Min(_options.BackoffMax.Ticks, _options.BackoffInitial.Ticks << Math.Min(_consecutiveFailures, 30)));
        _consecutiveFailures++;
        _recentRestarts.Enqueue(now);
        var restarts = _runtime.Restarts + 1;
        FleetLog.Backoff(_logger, _name, (long)delay.TotalMilliseconds, restarts);
        await SetAsync(exited with { Status = InstanceStatus.Backoff, Restarts = restarts });
        var spec = _spec;
        _ = RestartLaterAsync(generation, spec, delay);
    }

    private async Task RestartLaterAsync(int generation, InstanceSpec spec, TimeSpan delay)
    {
        await Task.Delay(delay, _time);
        await Post(() => generation == _generation ? StartCoreAsync(spec, byOperator: false) : Task.CompletedTask);
    }

    private async Task StopCoreAsync()
    {
        _generation++;
        if (_process is not { } process)
        {
            if (_runtime.Status != InstanceStatus.Stopped)
            {
                await SetAsync(_runtime with { Status = InstanceStatus.Stopped, Pid = null });
            }
            return;
        }
        await SetAsync(_runtime with { Status = InstanceStatus.Stopping });
        var exited = _exited!;
        if (!PosixSignals.Send(process.Pid, PosixSignals.SigTerm))
        {
            process.Kill();
        }
        try
        {
            await exited.WaitAsync(_options.StopGracePeriod, _time);
        }
        catch (TimeoutException)
        {
            FleetLog.Killed(_logger, _name, (long)_options.StopGracePeriod.TotalMilliseconds);
            _log.WriteLine("hub", $"no exit {_options.StopGracePeriod.TotalSeconds:0.###} s after SIGTERM: SIGKILL");
            process.Kill();
            try
            {
                await exited.WaitAsync(KillWait);
            }
            catch (TimeoutException)
            {
            }
        }
        if (!exited.IsCompleted)
        {
            return; // unkillable (e.g. stuck in the kernel): leave the status at stopping
        }
        var (code, signal) = TakeExit();
        FleetLog.Exited(_logger, _name, code, signal);
        _log.WriteLine("hub", signal is { } s ? $"stopped: exit code {code} (signal {s})" : $"stopped: exit code {code}");
        await SetAsync(_runtime with { Status = InstanceStatus.Stopped, Pid = null, ExitCode = code, Signal = signal, LastExitAtMs = Now });
    }

    /// <summary>
    /// Kills a process left running by a hub that died without stopping its children (SIGKILL, a crash): the
    /// pid file names it, and its start time (Linux: <c>/proc/&lt;pid&gt;/stat</c>) must still match, so a reused
    /// pid is never touched. Call before the first start. Returns the pid killed, or null.
    /// </summary>
    public int? KillOrphan()
    {
        try
        {
            if (!File.Exists(_pidFile))
            {
                return null;
            }
            var parts = File.ReadAllText(_pidFile).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            File.Delete(_pidFile);
            if (parts.Length != 2 || !int.TryParse(parts[0], out var pid) || StartTime(pid) is not { } started || started != parts[1])
            {
                return null;
            }
            using var orphan = Process.GetProcessById(pid);
            InstanceProcesses.KillTree(orphan);
            orphan.WaitForExit(KillWait);
            _log.WriteLine("hub", $"killed pid {pid}, left running by a previous hub");
            return pid;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
        {
            return null; // gone meanwhile, or not ours to read
        }
    }

    private void WritePidFile(int pid)
    {
        if (StartTime(pid) is { } started)
        {
            File.WriteAllText(_pidFile, $"{pid} {started}\n");
        }
    }

    // Field 22 of /proc/<pid>/stat (clock ticks after boot); the command name in field 2 may hold spaces and parentheses.
    private static string? StartTime(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length > 19 ? fields[19] : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private async Task HealthLoopAsync(int generation, Uri url, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.HealthInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                string? error = null;
                using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    timeout.CancelAfter(_options.HealthTimeout);
                    try
                    {
                        using var response = await Http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                        if (!response.IsSuccessStatusCode)
                        {
                            error = $"health check answered HTTP {(int)response.StatusCode}";
                        }
                    }
                    catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                    {
                        error = $"health check timed out after {_options.HealthTimeout.TotalSeconds:0.###} s";
                    }
                    catch (HttpRequestException ex)
                    {
                        error = "health check failed: " + ex.Message;
                    }
                }
                await Post(() => OnHealthAsync(generation, error));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task OnHealthAsync(int generation, string? error)
    {
        if (generation != _generation || _process is null)
        {
            return;
        }
        if (error is not null && _runtime.Status == InstanceStatus.Running)
        {
            FleetLog.Unhealthy(_logger, _name, error);
            await SetAsync(_runtime with { Status = InstanceStatus.Unhealthy, Error = error });
        }
        else if (error is null && _runtime.Status == InstanceStatus.Unhealthy)
        {
            await SetAsync(_runtime with { Status = InstanceStatus.Running, Error = null });
        }
    }

    /// <summary>Stops the process (as <see cref="StopAsync"/>) and ends the runner.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _steps.Writer.TryComplete();
        await _loop;
        _log.Dispose();
    }
}
