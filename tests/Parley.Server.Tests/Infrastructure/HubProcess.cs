using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Parley.Server.Tests.Infrastructure;

/// <summary>
/// The real <c>parley serve</c> process (the built CLI), for tests that kill or signal the hub.
/// Its output is kept and shown when a start fails.
/// </summary>
public sealed class HubProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    private HubProcess(Process process, Uri baseUrl)
    {
        _process = process;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>The built CLI: src/Parley.Cli/bin/&lt;configuration&gt;/net10.0/parley.dll.</summary>
    public static string CliDll
    {
        get
        {
            var fromEnv = Environment.GetEnvironmentVariable("PARLEY_CLI_DLL");
            if (!string.IsNullOrEmpty(fromEnv))
            {
                return fromEnv;
            }
#if DEBUG
            const string configuration = "Debug";
#else
            const string configuration = "Release";
#endif
            return Path.Combine(RepoRoot, "src", "Parley.Cli", "bin", configuration, "net10.0", "parley.dll");
        }
    }

    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Parley.slnx")))
            {
                dir = dir.Parent;
            }
            return dir?.FullName ?? throw new InvalidOperationException("Parley.slnx not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>A free loopback port (so a restarted hub can come back on the same address).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Runs the CLI with arguments and returns (exit code, stdout, stderr), bounded by a timeout.</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunCliAsync(TimeSpan timeout, params string[] args) =>
        RunCliAsync(timeout, null, args);

    /// <summary>Runs the CLI with extra environment variables.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunCliAsync(TimeSpan timeout, IDictionary<string, string>? environment, params string[] args)
    {
        using var process = Process.Start(StartInfo(args, environment))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"parley {string.Join(' ', args)} did not exit within {timeout}");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts a long-running CLI verb (the caller reads its output and ends it).</summary>
    public static Process StartCli(IDictionary<string, string>? environment, params string[] args) =>
        Process.Start(StartInfo(args, environment))!;

    /// <summary>Starts <c>parley serve --json</c> and waits for its listening line.</summary>
    public static async Task<HubProcess> StartAsync(string dataDir, int port, IDictionary<string, string>? environment = null)
    {
        var process = Process.Start(StartInfo(["serve", "--listen", $"127.0.0.1:{port}", "--data", dataDir, "--json", "--insecure-no-auth"], environment))!;
        var hub = new HubProcess(process, new Uri($"http://127.0.0.1:{port}/"));
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (hub._stderr)
                {
                    hub._stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(cts.Token)
                    ?? throw new InvalidOperationException($"parley serve exited ({process.ExitCode}) before listening:\n{hub.Stderr}");
                if (line.StartsWith('{') && JsonNode.Parse(line)?["event"]?.GetValue<string>() == "listening")
                {
                    return hub;
                }
            }
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"parley serve did not start within 60 s:\n{hub.Stderr}");
        }
    }

    /// <summary>How the built CLI is started with <paramref name="args"/> (stdout and stderr redirected), for a test that drives the process itself.</summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> args, IDictionary<string, string>? environment)
    {
        var dll = CliDll;
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"build the CLI first (scripts/test does): {dll}");
        }
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        info.Environment["PARLEY_LOG_LEVEL"] = "warning";
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                info.Environment[key] = value;
            }
        }
        return info;
    }

    /// <summary>SIGKILL: no chance to flush anything.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGTERM, then wait for exit; returns how long the exit took.</summary>
    public async Task<TimeSpan> TerminateAsync(TimeSpan timeout)
    {
        var started = Stopwatch.GetTimestamp();
        if (kill(_process.Id, 15) != 0)
        {
            throw new InvalidOperationException("kill(SIGTERM) failed");
        }
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return Stopwatch.GetElapsedTime(started);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
