using System.Text.RegularExpressions;

namespace Parley.Terminal;

/// <summary>Terminal output as a person reads it in plain text: escape sequences out, carriage returns resolved.</summary>
public static partial class TerminalText
{
    /// <summary>
    /// One line of terminal output (without its <c>\n</c>) as plain text: CSI, OSC and other escape sequences are
    /// removed, a carriage return keeps only what was written after it (a progress bar's last state), other control
    /// characters but tabs are dropped, and trailing white space is trimmed (indentation stays).
    /// </summary>
    public static string PlainLine(string raw)
    {
        ArgumentNullException.ThrowIfNull(raw);
        var line = EscapeSequence().Replace(raw, "").TrimEnd('\r');
        var cr = line.LastIndexOf('\r');
        if (cr >= 0)
        {
            line = line[(cr + 1)..];
        }
        return new string([.. line.Where(c => !char.IsControl(c) || c == '\t')]).TrimEnd();
    }

    // ECMA-48: CSI (ESC [ params intermediates final), OSC (ESC ] … BEL or ST), ESC intermediates final (nF: ESC ( B,
    // ESC # 8) and the two-byte escapes ESC Fp/Fe/Fs (ESC 7, ESC =, ESC M, ESC c).
    [GeneratedRegex(@"\x1B(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1B]*(?:\x07|\x1B\\)?|[ -/]+[0-~]|[0-~])")]
    private static partial Regex EscapeSequence();
}
