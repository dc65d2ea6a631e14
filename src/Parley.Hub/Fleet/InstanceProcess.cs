using System.ComponentModel;
using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Parley.Hub.Fleet;

/// <summary>
/// One run of an instance's command as <see cref="InstanceRunner"/> supervises it: with pipes
/// (<see cref="PipedInstanceProcess"/>) or under a terminal the hub hosts (<see cref="TerminalInstanceProcess"/>).
/// Either way its output goes to the instance's log, one line per line.
/// </summary>
internal interface IInstanceProcess : IDisposable
{
    /// <summary>The process id.</summary>
    int Pid { get; }

    /// <summary>The terminal session (<c>term:&lt;id&gt;</c>) when it runs under one; null with pipes.</summary>
    string? TerminalId { get; }

    /// <summary>Completes once the process has exited and its output is written (drained briefly: a grandchild may hold it open for ever).</summary>
    Task Exited { get; }

    /// <summary>How it ended, once <see cref="Exited"/> completed: the code (128 + N for signal N, as a shell reports) and the signal.</summary>
    (int Code, int? Signal) Exit { get; }

    /// <summary>SIGKILL for the process and every descendant.</summary>
    void Kill();
}

/// <summary>Starting and killing processes the fleet way.</summary>
internal static class InstanceProcesses
{
    /// <summary>The environment an instance runs with: the hub's, then the spec's variables, then <c>PARLEY_INSTANCE</c>.</summary>
    public static Dictionary<string, string> ExtraEnvironment(string name, InstanceSpec spec) =>
        new(spec.Env, StringComparer.Ordinal) { ["PARLEY_INSTANCE"] = name };

    /// <summary>SIGKILL for <paramref name="process"/> and its descendants; nothing when it is gone already.</summary>
    public static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or Win32Exception or NotSupportedException)
        {
            // already gone
        }
    }

    /// <summary>SIGKILL for the process <paramref name="pid"/> and its descendants.</summary>
    public static void KillTree(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            KillTree(process);
        }
        catch (ArgumentException)
        {
            // already gone
        }
    }
}

/// <summary>
/// An instance's command with its stdout and stderr on pipes, read line by line into the log (stream <c>stdout</c>
/// or <c>stderr</c>), and stdin at EOF.
/// </summary>
internal sealed class PipedInstanceProcess : IInstanceProcess
{
    private static readonly TimeSpan OutputDrainWait = TimeSpan.FromMilliseconds(200);
    private readonly Process _process;

    private PipedInstanceProcess(Process process, string name, InstanceLogWriter log, ILogger logger)
    {
        _process = process;
        var pumps = new[] { PumpAsync(process.StandardOutput, "stdout", name, log, logger), PumpAsync(process.StandardError, "stderr", name, log, logger) };
        Exited = WaitForExitAsync(process, pumps);
    }

    public int Pid => _process.Id;

    public string? TerminalId => null;

    public Task Exited { get; }

    /// <summary>.NET reports a signalled child as 128 + the signal, as a shell does; the signal is inferred from that.</summary>
    public (int Code, int? Signal) Exit => (_process.ExitCode, !OperatingSystem.IsWindows() && _process.ExitCode is > 128 and <= 192 ? _process.ExitCode - 128 : null);

    /// <summary>Starts the command; throws <see cref="Win32Exception"/> when it cannot run.</summary>
    public static PipedInstanceProcess Start(string name, InstanceSpec spec, string cwd, InstanceLogWriter log, ILogger logger)
    {
        var info = new ProcessStartInfo(spec.Command)
        {
            WorkingDirectory = cwd,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
            StandardErrorEncoding = System.Text.Encoding.UTF8,
        };
        foreach (var arg in spec.Args)
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in InstanceProcesses.ExtraEnvironment(name, spec))
        {
            info.Environment[key] = value;
        }
        var process = new Process { StartInfo = info };
        process.Start();
        process.StandardInput.Close(); // the child reads EOF, never the hub's terminal
        return new PipedInstanceProcess(process, name, log, logger);
    }

    public void Kill() => InstanceProcesses.KillTree(_process);

    public void Dispose() => _process.Dispose();

    private static async Task PumpAsync(StreamReader reader, string stream, string name, InstanceLogWriter log, ILogger logger)
    {
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                try
                {
                    log.WriteLine(stream, line);
                }
                catch (IOException ex)
                {
                    FleetLog.LogWriteFailed(logger, name, ex);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // the pipe closed under the reader: the process is gone
        }
    }

    private static async Task WaitForExitAsync(Process process, Task[] pumps)
    {
        await process.WaitForExitAsync();
        try
        {
            await Task.WhenAll(pumps).WaitAsync(OutputDrainWait);
        }
        catch (TimeoutException)
        {
        }
    }
}
