using System.Text;
using Parley.Terminal.Pty;

namespace Parley.Terminal.Tests;

/// <summary>A <see cref="PtyProcess"/> with its output collected by a reader thread, and bounded waits on it.</summary>
internal sealed class PtyHarness : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly MemoryStream _output = new();
    private readonly Thread _reader;

    public PtyHarness(PtyStartInfo info)
    {
        Process = PtyProcess.Start(info);
        _reader = new Thread(() =>
        {
            var buffer = new byte[65536];
            while (true)
            {
                var n = Process.Read(buffer, 100);
                if (n < 0 || (n == 0 && Process.Exited.IsCompleted))
                {
                    break;
                }
                lock (_output)
                {
                    _output.Write(buffer, 0, n);
                    Monitor.PulseAll(_output);
                }
            }
            lock (_output)
            {
                Ended = true;
                Monitor.PulseAll(_output);
            }
        }) { IsBackground = true };
        _reader.Start();
    }

    public static PtyHarness Start(string file, params string[] args) => new(new PtyStartInfo { File = file, Arguments = args });

    public PtyProcess Process { get; }

    public bool Ended { get; private set; }

    public byte[] Bytes
    {
        get
        {
            lock (_output)
            {
                return _output.ToArray();
            }
        }
    }

    public string Text => Encoding.UTF8.GetString(Bytes);

    /// <summary>Waits (bounded) until the output contains <paramref name="expected"/>.</summary>
    public string WaitFor(string expected)
    {
        var deadline = DateTime.UtcNow + Timeout;
        lock (_output)
        {
            while (true)
            {
                var text = Encoding.UTF8.GetString(_output.GetBuffer(), 0, (int)_output.Length);
                if (text.Contains(expected, StringComparison.Ordinal))
                {
                    return text;
                }
                var left = deadline - DateTime.UtcNow;
                if (Ended || left <= TimeSpan.Zero)
                {
                    throw new TimeoutException($"'{expected}' not seen{(Ended ? " before the end" : $" within {Timeout}")}; output so far:\n{text}");
                }
                Monitor.Wait(_output, left);
            }
        }
    }

    public void Write(string text)
    {
        var data = Encoding.UTF8.GetBytes(text);
        var done = 0;
        while (done < data.Length)
        {
            done += Process.Write(data.AsSpan(done), 1000);
        }
    }

    public async Task<TerminalExit> ExitAsync()
    {
        var exit = await Process.WaitForExitAsync().WaitAsync(Timeout);
        _reader.Join(Timeout);
        return exit;
    }

    public void Dispose()
    {
        Process.Signal(SignalNumbers.Kill);
        _reader.Join(Timeout);
        Process.Dispose();
    }
}
