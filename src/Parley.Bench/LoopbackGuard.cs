using System.Net;

namespace Parley.Bench;

/// <summary>
/// The bench only ever talks to this machine: a load generator pointed at someone else's server is an
/// attack, not a benchmark. Hosts allowed: <c>localhost</c>, 127.0.0.0/8 and ::1.
/// </summary>
public static class LoopbackGuard
{
    /// <summary>
    /// Parses <paramref name="url"/> (<c>http</c>, <c>https</c>, <c>ws</c> or <c>wss</c>) and returns it
    /// when its host is loopback; otherwise throws <see cref="BenchUsageException"/> naming the host.
    /// </summary>
    public static Uri Check(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "ws" or "wss"))
        {
            throw new BenchUsageException($"--url '{url}' is not an http:// or ws:// URL, e.g. http://127.0.0.1:4000");
        }
        if (!IsLoopback(uri))
        {
            throw new BenchUsageException(
                $"--url '{url}': the host '{uri.Host}' is not loopback. parley bench only runs against this machine " +
                "(localhost, 127.0.0.0/8 or [::1]).");
        }
        return uri;
    }

    /// <summary>True when the URL's host is <c>localhost</c>, an address in 127.0.0.0/8, or ::1.</summary>
    public static bool IsLoopback(Uri uri)
    {
        var host = uri.DnsSafeHost;
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        return IPAddress.TryParse(host, out var address) &&
            (IPAddress.IsLoopback(address) || (address.IsIPv4MappedToIPv6 && IPAddress.IsLoopback(address.MapToIPv4())));
    }
}
