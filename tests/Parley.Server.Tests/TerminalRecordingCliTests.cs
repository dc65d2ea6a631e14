using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>
/// <c>parley run --offline --record DIR</c> and <c>parley term list|export|play</c> as real child processes, with no
/// profile and no hub (docs/terminal-recordings.md).
/// </summary>
public sealed partial class TerminalRecordingCliTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly string _home = Directory.CreateTempSubdirectory("parley-rec-cli-test-").FullName;

    public void Dispose() => TestHub.TryDelete(_home);

    private string Recordings => Path.Combine(_home, "rec");

    private Dictionary<string, string> Environment() => new()
    {
        ["XDG_CONFIG_HOME"] = Path.Combine(_home, "config"),
        ["XDG_STATE_HOME"] = Path.Combine(_home, "state"),
        ["PARLEY_SERVER"] = "",
        ["PARLEY_TOKEN"] = "",
        ["PARLEY_USER"] = "",
    };

    [GeneratedRegex(@"recorded (\S+) \((.+)\)")]
    private static partial Regex RecordedLine();

    private sealed record Result(int ExitCode, byte[] Stdout, string Stderr)
    {
        public string Text => Encoding.UTF8.GetString(Stdout);

        public string Id => RecordedLine().Match(Stderr) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException("no 'recorded ID' line in:\n" + Stderr);
    }

    // The CLI with stdin a pipe (fed `stdin`, then closed), stdout kept as bytes; bounded by Timeout.
    private Task<Result> CliAsync(string? stdin, params string[] args) => CliAsync(stdin, fileSizeLimitBlocks: null, args);

    // fileSizeLimitBlocks: run it under `ulimit -f` (512-byte blocks), SIGXFSZ ignored, so a write past it fails with EFBIG.
    private async Task<Result> CliAsync(string? stdin, int? fileSizeLimitBlocks, string[] args)
    {
        var info = HubProcess.StartInfo(args, Environment());
        if (fileSizeLimitBlocks is { } blocks)
        {
            var command = info.ArgumentList.ToList();
            info.ArgumentList.Clear();
            info.FileName = "/bin/sh";
            foreach (var arg in (string[])["-c", $"trap '' XFSZ; ulimit -f {blocks}; exec dotnet \"$@\"", "sh", .. command])
            {
                info.ArgumentList.Add(arg);
            }
            info.Environment["DOTNET_EnableWriteXorExecute"] = "0"; // the runtime's double-mapped code pages are files too
        }
        info.RedirectStandardInput = true;
        using var process = Process.Start(info)!;
        var stdout = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }
        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"parley {string.Join(' ', args)} did not exit within {Timeout}; stderr: {await stderr}");
        }
        await copy;
        return new Result(process.ExitCode, stdout.ToArray(), await stderr);
    }

    private Task<Result> RunAsync(params string[] command) => CliAsync(null, ["run", "--offline", "--record", Recordings, "--", .. command]);

    [Fact]
    public async Task The_exit_code_of_the_command_is_the_exit_code_of_run_and_is_in_the_meta()
    {
        var run = await RunAsync("sh", "-c", "exit 7");
        Assert.True(run.ExitCode == 7, $"exit {run.ExitCode}: {run.Stderr}");
        Assert.Contains("exit 7; recorded", run.Stderr, StringComparison.Ordinal);
        using var meta = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(Recordings, run.Id + ".meta.json")));
        Assert.Equal(7, meta.RootElement.GetProperty("exit_code").GetInt32());
    }

    [Fact]
    public async Task A_command_killed_by_signal_N_makes_run_exit_128_plus_N()
    {
        var run = await RunAsync("sh", "-c", "kill -KILL $$");
        Assert.True(run.ExitCode == 137, $"exit {run.ExitCode}: {run.Stderr}");
        Assert.Contains("killed by signal 9", run.Stderr, StringComparison.Ordinal);
        using var meta = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(Recordings, run.Id + ".meta.json")));
        Assert.Equal(9, meta.RootElement.GetProperty("signal").GetInt32());
        Assert.Equal(JsonValueKind.Null, meta.RootElement.GetProperty("exit_code").ValueKind);

        var term = await RunAsync("sh", "-c", "kill -TERM $$");
        Assert.True(term.ExitCode == 143, $"exit {term.ExitCode}: {term.Stderr}");
    }

    [Fact]
    public async Task A_recording_that_cannot_be_written_stops_the_command_and_says_why()
    {
        // A file size limit (100 KiB) fails the recording's writes the way a full disk does, for real.
        var run = await CliAsync(null, fileSizeLimitBlocks: 200, ["run", "--offline", "--record", Recordings, "--", "sh", "-c", "head -c 5000000 /dev/zero; echo unreachable"]);
        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}: {run.Stderr}");
        Assert.Contains("the recording failed, so the command was stopped: cannot write ", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("the file size limit was reached", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("unreachable", run.Text, StringComparison.Ordinal);
        var output = Assert.Single(Directory.GetFiles(Recordings, "*.output"));
        Assert.Equal(200 * 512, new FileInfo(output).Length); // everything up to the limit was kept
        Assert.Contains("--record DIR", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_program_that_does_not_exist_makes_run_exit_127()
    {
        foreach (var program in new[] { "parley-no-such-program-x9", Path.Combine(_home, "missing", "prog") })
        {
            var run = await RunAsync(program, "arg");
            Assert.True(run.ExitCode == 127, $"{program}: exit {run.ExitCode}: {run.Stderr}");
            Assert.Contains("parley run:", run.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_record_directory_that_cannot_be_written_fails_with_exit_1_and_says_so()
    {
        var file = Path.Combine(_home, "not-a-directory");
        await File.WriteAllTextAsync(file, "x");
        var run = await CliAsync(null, "run", "--offline", "--record", Path.Combine(file, "rec"), "--", "true");
        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}: {run.Stderr}");
        Assert.Contains($"cannot record into {Path.Combine(file, "rec")}", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("--record DIR", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stdin_that_is_not_a_terminal_is_passed_on_and_its_end_ends_cat()
    {
        var run = await CliAsync("hi\nthere\n", "run", "--offline", "--record", Recordings, "--", "cat");
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {run.Stderr}");
        // The terminal echoes each line and cat prints it again, both with the terminal's \r\n.
        Assert.Equal("hi\r\nhi\r\nthere\r\nthere\r\n", Normalize(run.Text));
        var prefix = Path.Combine(Recordings, run.Id);
        Assert.Equal(run.Stdout, await File.ReadAllBytesAsync(prefix + ".output"));
        // The input holds what came in, then the end of file passed on as Ctrl-D.
        Assert.Equal("hi\nthere\n\x04", await File.ReadAllTextAsync(prefix + ".input"));

        var partial = await CliAsync("no newline", "run", "--offline", "--record", Recordings, "--", "cat");
        Assert.True(partial.ExitCode == 0, $"exit {partial.ExitCode}: {partial.Stderr}");
        Assert.Contains("no newline", partial.Text, StringComparison.Ordinal);
    }

    // The echo and cat's copy of a line can interleave line by line; the set of lines is what is fixed.
    private static string Normalize(string text) => string.Concat(text.Split("\r\n").Where(l => l.Length > 0).Order(StringComparer.Ordinal).Select(l => l + "\r\n"));

    [Fact]
    public async Task The_recording_goes_into_the_record_directory_and_term_list_shows_it()
    {
        var run = await RunAsync("sh", "-c", "printf 'listed output'; exit 4");
        Assert.Equal(4, run.ExitCode);
        var prefix = Path.Combine(Recordings, run.Id);
        Assert.Contains($"({prefix})", run.Stderr, StringComparison.Ordinal);
        foreach (var suffix in new[] { ".output", ".input", ".output.tidx", ".input.tidx", ".meta.json" })
        {
            Assert.True(File.Exists(prefix + suffix), $"{prefix + suffix} missing; in {Recordings}: {string.Join(", ", Directory.GetFiles(Recordings))}");
        }
        Assert.Equal("listed output", await File.ReadAllTextAsync(prefix + ".output"));
        Assert.False(Directory.Exists(Path.Combine(_home, "state", "parley", "terminals")), "nothing in the default directory");

        var list = await CliAsync(null, "term", "list", "--dir", Recordings);
        Assert.Equal(0, list.ExitCode);
        var row = Assert.Single(list.Text.Split('\n'), l => l.StartsWith(run.Id, StringComparison.Ordinal));
        Assert.Contains(" 4 ", row, StringComparison.Ordinal);
        Assert.Contains("13B", row, StringComparison.Ordinal);
        Assert.EndsWith("sh -c printf 'listed output'; exit 4", row.TrimEnd(), StringComparison.Ordinal);

        var json = await CliAsync(null, "term", "list", "--dir", Recordings, "--json");
        Assert.Equal(0, json.ExitCode);
        var line = Assert.Single(json.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        Assert.Equal(run.Id, root.GetProperty("id").GetString());
        Assert.Equal(prefix, root.GetProperty("prefix").GetString());
        Assert.Equal(13, root.GetProperty("output_bytes").GetInt64());
        Assert.Equal(4, root.GetProperty("exit_code").GetInt32());
        Assert.Equal(["sh", "-c", "printf 'listed output'; exit 4"], root.GetProperty("command").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.NotEqual(JsonValueKind.Null, root.GetProperty("ended_at").ValueKind);

        var empty = await CliAsync(null, "term", "list", "--dir", Path.Combine(_home, "none"));
        Assert.Equal((0, "no recordings\n"), (empty.ExitCode, empty.Text));
    }

    [Fact]
    public async Task Term_export_writes_asciicast_and_term_play_reproduces_the_output()
    {
        var run = await RunAsync("sh", "-c", "printf '\\033[1mbold\\033[0m ünï ✓\\n'; sleep 0.3; i=0; while [ $i -lt 200 ]; do echo \"line $i\"; i=$((i+1)); done; sleep 0.3; printf end");
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {run.Stderr}");
        var output = await File.ReadAllBytesAsync(Path.Combine(Recordings, run.Id + ".output"));

        var export = await CliAsync(null, "term", "export", "--asciicast", run.Id, "--dir", Recordings);
        Assert.True(export.ExitCode == 0, $"exit {export.ExitCode}: {export.Stderr}");
        var lines = export.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        using (var header = JsonDocument.Parse(lines[0]))
        {
            Assert.Equal(2, header.RootElement.GetProperty("version").GetInt32());
            Assert.Equal(80, header.RootElement.GetProperty("width").GetInt32());
            Assert.Equal(24, header.RootElement.GetProperty("height").GetInt32());
        }
        var data = new StringBuilder();
        var last = 0.0;
        foreach (var line in lines[1..])
        {
            using var e = JsonDocument.Parse(line);
            Assert.Equal("o", e.RootElement[1].GetString());
            var time = e.RootElement[0].GetDouble();
            Assert.True(time >= last, $"time {time} after {last}");
            last = time;
            data.Append(e.RootElement[2].GetString());
        }
        Assert.Equal(Encoding.UTF8.GetString(output), data.ToString());
        Assert.True(last >= 0.6, $"the last event at {last} s comes after both pauses");

        var play = await CliAsync(null, "term", "play", run.Id, "--dir", Recordings, "--speed", "100");
        Assert.True(play.ExitCode == 0, $"exit {play.ExitCode}: {play.Stderr}");
        Assert.Equal(output, play.Stdout);

        // Redirected to a file the shell keeps writing to, the bytes stay where they were written.
        var file = Path.Combine(_home, "s.cast");
        var shell = new ProcessStartInfo("sh") { UseShellExecute = false, RedirectStandardError = true };
        foreach (var arg in new[] { "-c", "{ echo HEAD; dotnet \"$0\" term export --asciicast \"$1\" --dir \"$2\"; dotnet \"$0\" term play \"$1\" --dir \"$2\" --speed 1000; echo TAIL; } > \"$3\"", HubProcess.CliDll, run.Id, Recordings, file })
        {
            shell.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in Environment())
        {
            shell.Environment[key] = value;
        }
        using (var sh = Process.Start(shell)!)
        {
            var shellErrors = sh.StandardError.ReadToEndAsync();
            await sh.WaitForExitAsync().WaitAsync(Timeout);
            Assert.True(sh.ExitCode == 0, $"exit {sh.ExitCode}: {await shellErrors}");
        }
        var written = await File.ReadAllBytesAsync(file);
        Assert.Equal([.. Encoding.ASCII.GetBytes("HEAD\n"), .. export.Stdout, .. output, .. Encoding.ASCII.GetBytes("TAIL\n")], written);

        // A path prefix works as well as an id.
        var byPath = await CliAsync(null, "term", "play", Path.Combine(Recordings, run.Id) + ".meta.json", "--max-idle", "0");
        Assert.Equal(output, byPath.Stdout);

        var missing = await CliAsync(null, "term", "export", "--asciicast", "20000101-000000-0000", "--dir", Recordings);
        Assert.Equal(4, missing.ExitCode);
        Assert.Contains("no recording", missing.Stderr, StringComparison.Ordinal);
        var noFormat = await CliAsync(null, "term", "export", run.Id, "--dir", Recordings);
        Assert.Equal(2, noFormat.ExitCode);
        Assert.Contains("--asciicast", noFormat.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Export_and_play_into_a_pipe_whose_reader_stops_early_end_quietly()
    {
        // 3 MB of output: far more than a pipe holds, so both verbs are still writing when the reader goes.
        var run = await RunAsync("sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a");
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {run.Stderr}");
        foreach (var args in new[] { new[] { "term", "export", "--asciicast", run.Id, "--dir", Recordings }, ["term", "play", run.Id, "--dir", Recordings, "--max-idle", "0"] })
        {
            // `parley term … | head -c 10`: read a little, then close the pipe (the CLI's next write gets EPIPE).
            var info = HubProcess.StartInfo(args, Environment());
            using var process = Process.Start(info)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var head = new byte[10];
            await process.StandardOutput.BaseStream.ReadExactlyAsync(head).AsTask().WaitAsync(Timeout);
            process.StandardOutput.Close();
            using var cts = new CancellationTokenSource(Timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"parley {string.Join(' ', args)} kept running after its reader went away");
            }
            var errors = await stderr;
            Assert.True(process.ExitCode == 0, $"parley {string.Join(' ', args)}: exit {process.ExitCode}: {errors}");
            Assert.DoesNotContain("exception", errors, StringComparison.OrdinalIgnoreCase);
        }
    }
}
