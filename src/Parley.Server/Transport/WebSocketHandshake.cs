using System.Text;
using Microsoft.AspNetCore.Http;
using Parley.Protocol;

namespace Parley.Server.Transport;

/// <summary>The parts of an upgrade request the hub needs, validated (RFC 6455 §4.2.1, docs/protocol.md §Connecting).</summary>
internal sealed record UpgradeRequest(string Key, string? Token, bool OffersPhoenixSubprotocol, IReadOnlyDictionary<string, string> Params);

internal static class WebSocketHandshake
{
    /// <summary>The Phoenix protocol version this hub speaks.</summary>
    public const string SupportedVsn = "2.0.0";

    private const string BearerPrefix = "base64url.bearer.phx.";

    /// <summary>Validates the request; on failure returns an HTTP status and a message for the client.</summary>
    /// <param name="phoenix">True for the Phoenix socket (<c>vsn</c> checked, the <c>phoenix</c> subprotocol answered); false for a plain stream, whose token may also come as <c>Authorization: Bearer</c>.</param>
    public static bool TryParse(string method, IQueryCollection query, IHeaderDictionary headers, out UpgradeRequest? upgrade, out int status, out string error, bool phoenix = true)
    {
        upgrade = null;
        status = StatusCodes.Status400BadRequest;
        if (!HttpMethods.IsGet(method))
        {
            status = StatusCodes.Status405MethodNotAllowed;
            error = "WebSocket upgrades use GET";
            return false;
        }
        if (!headers.Upgrade.ToString().Contains("websocket", StringComparison.OrdinalIgnoreCase))
        {
            status = StatusCodes.Status426UpgradeRequired;
            error = "this endpoint speaks WebSocket only: send Upgrade: websocket";
            return false;
        }
        if (headers.SecWebSocketVersion.ToString() != "13")
        {
            status = StatusCodes.Status426UpgradeRequired;
            error = "Sec-WebSocket-Version must be 13";
            return false;
        }
        var key = headers.SecWebSocketKey.ToString();
        if (!IsValidKey(key))
        {
            error = "Sec-WebSocket-Key must be 16 bytes in base64";
            return false;
        }
        var vsn = query["vsn"].ToString();
        if (vsn.Length == 0)
        {
            vsn = "1.0.0"; // what Phoenix assumes when vsn is absent
        }
        if (phoenix && vsn != SupportedVsn)
        {
            error = $"unsupported vsn {vsn}: this hub speaks the Phoenix V2 serializer (vsn=2.0.0)";
            return false;
        }

        string? token = query["token"].ToString() is { Length: > 0 } queryToken ? queryToken : null;
        if (!phoenix && token is null && headers.Authorization.ToString() is { } authorization
            && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization["Bearer ".Length..].Trim() is { Length: > 0 } bearerToken)
        {
            token = bearerToken;
        }
        var offersPhoenix = false;
        foreach (var entry in headers.SecWebSocketProtocol.ToString().Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (entry == "phoenix")
            {
                offersPhoenix = true;
            }
            else if (entry.StartsWith(BearerPrefix, StringComparison.Ordinal))
            {
                if (!TryDecodeBearer(entry[BearerPrefix.Length..], out var bearer))
                {
                    error = "the bearer subprotocol entry is not valid base64";
                    return false;
                }
                token ??= bearer;
            }
        }

        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in query)
        {
            if (name != "token" && (name != "vsn" || !phoenix))
            {
                parameters[name] = value.ToString();
            }
        }
        upgrade = new UpgradeRequest(key, token, phoenix && offersPhoenix, parameters);
        status = 0;
        error = "";
        return true;
    }

    /// <summary>
    /// Cross-site WebSocket hijacking guard: a browser always sends <c>Origin</c>, so a page from another
    /// site must not reach the hub. Allowed: no Origin (non-browser clients), an origin on this machine
    /// (loopback), the hub's own host, and every origin in <paramref name="allowedOrigins"/> (<c>*</c> allows all).
    /// </summary>
    public static bool IsOriginAllowed(string? origin, string requestHost, IReadOnlyCollection<string> allowedOrigins)
    {
        if (string.IsNullOrEmpty(origin))
        {
            return true;
        }
        if (allowedOrigins.Contains("*"))
        {
            return true;
        }
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri))
        {
            return false; // includes "null" (sandboxed frames, file: pages)
        }
        var normalized = uri.GetLeftPart(UriPartial.Authority);
        foreach (var allowed in allowedOrigins)
        {
            if (string.Equals(allowed.TrimEnd('/'), normalized, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        if (uri.IsLoopback)
        {
            return true;
        }
        var host = requestHost;
        var colon = host.LastIndexOf(':');
        if (colon > 0 && !host.EndsWith(']'))
        {
            host = host[..colon];
        }
        return string.Equals(uri.Host, host.Trim('[', ']'), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Decodes the token of a <c>base64url.bearer.phx.…</c> entry: base64 without padding, standard or URL-safe alphabet.</summary>
    public static bool TryDecodeBearer(string encoded, out string token)
    {
        token = "";
        var normalized = encoded.Replace('-', '+').Replace('_', '/');
        normalized = normalized.PadRight(normalized.Length + ((4 - (normalized.Length % 4)) % 4), '=');
        try
        {
            token = Encoding.Latin1.GetString(Convert.FromBase64String(normalized));
            return token.Length > 0;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static bool IsValidKey(string key)
    {
        Span<byte> decoded = stackalloc byte[24];
        return key.Length == 24 && Convert.TryFromBase64String(key, decoded, out var written) && written == 16;
    }

    /// <summary>Writes the 101 response headers (Kestrel adds the status and <c>Connection: Upgrade</c>).</summary>
    public static void WriteAcceptHeaders(HttpResponse response, UpgradeRequest upgrade)
    {
        response.Headers.Upgrade = "websocket";
        response.Headers.SecWebSocketAccept = WebSocketFraming.ComputeAcceptKey(upgrade.Key);
        if (upgrade.OffersPhoenixSubprotocol)
        {
            // Browsers fail the handshake unless the server picks one of the offered subprotocols.
            response.Headers.SecWebSocketProtocol = "phoenix";
        }
    }
}
