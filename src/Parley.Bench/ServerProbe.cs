using System.Globalization;
using System.Runtime.InteropServices;

namespace Parley.Bench;

/// <summary>
/// Reads the server's CPU time and resident memory: from <c>/proc/&lt;pid&gt;</c> when the pid is known,
/// else (memory only, parley only) from the <c>process_resident_memory_bytes</c> line of <c>/metrics</c>.
/// </summary>
internal static class ServerProbe
{
    private const int ScClkTck = 2;   // _SC_CLK_TCK on Linux

    /// <summary>Kernel clock ticks per second (utime/stime units), from sysconf; 100 if that fails.</summary>
    public static long ClockTicksPerSecond { get; } = ReadClockTicks();

    /// <summary>utime + stime of <paramref name="pid"/> in microseconds, or null when unreadable.</summary>
    public static long? CpuMicros(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
        var close = stat.LastIndexOf(')');
        if (close < 0)
        {
            return null;
        }
        var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        if (fields.Length < 13 ||
            !long.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out var utime) ||
            !long.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out var stime))
        {
            return null;
        }
        return (utime + stime) * 1_000_000 / ClockTicksPerSecond;
    }

    /// <summary>VmRSS of <paramref name="pid"/> in bytes, or null when unreadable.</summary>
    public static long? RssFromProc(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var parts = line[6..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    return parts.Length >= 1 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb * 1024 : null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <summary>The <c>process_resident_memory_bytes</c> gauge of <c>&lt;baseUrl&gt;/metrics</c>, or null.</summary>
    public static async Task<long?> RssFromMetricsAsync(HttpMessageInvoker http, Uri baseUrl, CancellationToken cancellationToken)
    {
        var scheme = baseUrl.Scheme is "https" or "wss" ? "https" : "http";
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"{scheme}://{baseUrl.Authority}/metrics"));
        try
        {
            using var response = await http.SendAsync(request, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            return ParseMetricsRss(text);
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    internal static long? ParseMetricsRss(string metrics)
    {
        foreach (var line in metrics.Split('\n'))
        {
            if (line.StartsWith("process_resident_memory_bytes ", StringComparison.Ordinal) &&
                double.TryParse(line.AsSpan(30).Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                return (long)value;
            }
        }
        return null;
    }

    private static long ReadClockTicks()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 100;
        }
        try
        {
            var ticks = SysConf(ScClkTck);
            return ticks > 0 ? ticks : 100;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return 100;
        }
    }

    // DllImport rather than LibraryImport: the signature is blittable and needs no unsafe code.
    [DllImport("libc", EntryPoint = "sysconf")]
    private static extern long SysConf(int name);
}
